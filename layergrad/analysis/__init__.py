"""Stage 4, analysis: run tables -> curves, statistics, figures and the report.

loading.py (runs -> groups and pairs) · derived.py (loss- and length-derived metrics) · curves.py
(curves, MAD, RD, bootstrap) · significance.py (paired/unpaired tests, Holm) · separability.py
(AUROC, what the gradient adds) · length.py (length control) · claims.py (the claim registry and
its table) · tables.py (the paper's MAD table) · figures.py · report/ (every report section, its
wording and rendering) · summary.py (the terminal table) · steps.py (probes over training steps) ·
analyze.py (all of it for a run).
"""
