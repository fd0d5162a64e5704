"""Claims, checked: a study's claims (studies/) on the conditions a run has, found by their attributes.

context.py (what a statistic reads; attributes -> groups; units, pairs and clusters; draws) · kinds/ (the claim
kinds: each one's needs, rows and statistic, one module per family) · randomization.py (the one family of tests)
· adjustment.py (the effect at equal confounds, and whether the design identifies it) · testing.py (bootstrap p,
Holm, verdicts, confounded, the samples an inconclusive row would need) · caveats.py (the caveats in words) ·
stability.py (the verdicts on random halves) · pooling.py (a claim's evidence pooled over its cells) · table.py
(a study's claims table; between two runs).
"""

from layergrad.analysis.claims.caveats import Controls, baseline_scores
from layergrad.analysis.claims.context import ALL
from layergrad.analysis.claims.pooling import pooled_table
from layergrad.analysis.claims.table import between_runs_table, claims_table
from layergrad.analysis.claims.testing import ALPHA, COLUMNS

__all__ = ["ALL", "ALPHA", "COLUMNS", "Controls", "baseline_scores", "between_runs_table", "claims_table",
           "pooled_table"]
