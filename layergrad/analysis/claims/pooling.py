"""Evidence pooled across a study's cells: per claim and module, a random-effects estimate over the tasks (or any
``per`` cells) instead of a count of the rows that hold ("5 of 6 tasks" counts correlated rows as replications).

Each cell contributes the effect its verdict rests on (at equal confounds where identified, else the raw one), on
the scale its test sees (log(1 + effect) for a relative change), with a standard error read off its 95% CI.
DerSimonian-Laird: the between-cell variance tau² from Cochran's Q, the pooled effect and its CI with weights
1 / (se² + tau²), I² the share of the spread that is heterogeneity rather than sampling noise. Cells whose verdict
is ``confounded`` are left out of the pool and counted; where every cell is, their raw effects are pooled and the
pooled row is ``confounded`` too. Holm runs over the pooled rows; a pooled verdict reads like a row's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from layergrad.analysis.claims.context import ALL
from layergrad.analysis.claims.testing import ALPHA, rests_on_adjusted
from layergrad.analysis.significance import holm

COLUMNS = ["claim", "statement", "module", "verdict", "raw_verdict", "effect", "ci_low", "ci_high", "p", "p_holm",
           "tasks", "pooled_tasks", "confounded_tasks", "i2", "tau2", "rests_on", "effect_kind"]
Z95 = stats.norm.isf(0.025)


def pooled_table(claims: pd.DataFrame, signs: dict) -> pd.DataFrame:
    """One row per (claim, module) with at least two cells; ``signs``: {claim: +1, -1 or 0 (two-sided)}."""
    if claims.empty:
        return pd.DataFrame(columns=COLUMNS)
    tested = claims[claims.verdict.isin(["holds", "fails", "inconclusive", "confounded"])]
    rows = []
    for (claim, module), part in tested.groupby(["claim", "module"], sort=False):
        if part.task.nunique() < 2 or (module == ALL and part.p.isna().all()):
            continue
        row = pool(part)
        if row is not None:
            rows.append({"claim": claim, "statement": part.statement.iloc[0], "module": module, **row})
    table = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        return table
    table["p_holm"] = holm(table.p.to_numpy(dtype=float))
    sign = table.claim.map(signs).to_numpy(dtype=float)
    effect = np.sign(table.effect.to_numpy(dtype=float)) * sign
    significant = table.p_holm.to_numpy(dtype=float) < ALPHA
    verdict = np.where(significant & ((effect > 0) | (sign == 0)), "holds",
                       np.where(significant & (effect < 0), "fails", "inconclusive"))
    confounded = table.pooled_tasks.to_numpy() == 0
    table["raw_verdict"] = np.where(confounded, verdict, "")
    table["verdict"] = np.where(confounded, "confounded", verdict)
    return table


def pool(part: pd.DataFrame) -> dict | None:
    """The random-effects pool of one claim and module's cells (None where fewer than two have a CI)."""
    identified = part[part.verdict != "confounded"]
    used = identified if len(identified) >= 2 else (part if identified.empty else identified)
    adjusted = np.array([rests_on_adjusted(r) for r in used.rests_on], dtype=bool)
    pick = lambda a, b: np.where(adjusted, used[a].to_numpy(dtype=float), used[b].to_numpy(dtype=float))
    effect, low, high = pick("adjusted", "effect"), pick("adjusted_low", "ci_low"), pick("adjusted_high", "ci_high")
    relative = np.array(["relative" in str(k) for k in used.effect_kind], dtype=bool) | adjusted
    if relative.any() and not relative.all():
        return None  # one claim's rows on two scales: nothing to pool
    log = relative.all()
    if log:
        effect, low, high = (np.log1p(np.clip(v, -1 + 1e-12, None)) for v in (effect, low, high))
    se = (high - low) / (2 * Z95)
    ok = np.isfinite(effect) & np.isfinite(se) & (se > 0)
    if ok.sum() < 2:
        return None
    mu, mu_se, tau2, i2 = random_effects(effect[ok], se[ok])
    lo, hi = mu - Z95 * mu_se, mu + Z95 * mu_se
    back = np.expm1 if log else (lambda v: v)
    confounded = int((part.verdict == "confounded").sum())
    return {"effect": float(back(mu)), "ci_low": float(back(lo)), "ci_high": float(back(hi)),
            "p": float(2 * stats.norm.sf(abs(mu / mu_se))) if mu_se > 0 else np.nan, "tasks": part.task.nunique(),
            "pooled_tasks": int(ok.sum()) if used is identified else 0, "confounded_tasks": confounded,
            "i2": i2, "tau2": tau2,
            "rests_on": ("effects at equal confounds" if adjusted.all() else "raw effects" if not adjusted.any()
                         else "each cell's verdict's effect (at equal confounds where identified)"),
            "effect_kind": f"random-effects pool over {int(ok.sum())} cells: " + str(used.effect_kind.iloc[0])}


def random_effects(y: np.ndarray, se: np.ndarray) -> tuple[float, float, float, float]:
    """DerSimonian-Laird: (pooled effect, its standard error, tau², I²)."""
    w = 1 / se ** 2
    fixed = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - fixed) ** 2))
    k = len(y)
    tau2 = max(0.0, (q - (k - 1)) / (np.sum(w) - np.sum(w ** 2) / np.sum(w)))
    w_star = 1 / (se ** 2 + tau2)
    mu = float(np.sum(w_star * y) / np.sum(w_star))
    i2 = max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0
    return mu, float(np.sqrt(1 / np.sum(w_star))), tau2, i2
