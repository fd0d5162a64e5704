"""Stage 4, analysis: run tables -> curves, statistics, figures and the report.

groups.py (runs -> groups and pairs) · curves.py (curves, MAD, RD, bootstrap) · tests.py
(paired/unpaired tests, Holm) · separability.py (AUROC) · length.py (length control) ·
tables.py (the paper's MAD table) · findings.py (sentences, H1/H2/H5) · figures.py ·
report.py (HTML) · summary.py (the terminal table) · analyze.py (all of it for a run).
"""
