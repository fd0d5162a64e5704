"""Claims, checked: a study's claims (studies/) on the conditions a run has, found by their attributes.

context.py (what a statistic reads; attributes -> groups) · kinds.py (the claim kinds: each one's
needs, rows and statistic) · testing.py (bootstrap p, Holm, verdicts, the samples an inconclusive row
would need) · caveats.py (the caveats in words) · table.py (a study's claims table; between two runs).
"""

from layergrad.analysis.claims.caveats import Controls, baseline_scores
from layergrad.analysis.claims.table import between_runs_table, claims_table
from layergrad.analysis.claims.testing import ALL, ALPHA, COLUMNS

__all__ = ["ALL", "ALPHA", "COLUMNS", "Controls", "baseline_scores", "between_runs_table", "claims_table"]
