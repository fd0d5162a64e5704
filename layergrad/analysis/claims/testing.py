"""From effects to verdicts: Holm over a table, the verdict of each row by its claim's direction (or equivalence
margin), the 'all modules' summaries, and for an inconclusive row an estimate of the samples per side at which its
test would pass with 80% power; the bootstrap p of the kinds no randomization test serves."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from layergrad.analysis.claims.randomization import Design, smallest_n
from layergrad.analysis.curves import interval
from layergrad.analysis.significance import holm

ALPHA = 0.05
ALL = "all modules"
COLUMNS = ["claim", "task", "module", "statement", "definition", "verdict", "effect", "ci_low", "ci_high",
           "effect_kind", "adjusted", "adjusted_low", "adjusted_high", "rests_on", "effect_summed_loss", "a", "b",
           "p", "p_holm", "n", "n_to_decide", "test", "z", "caveats"]
ADJUSTED = "length-adjusted"  # rests_on of a row whose verdict rests on the effect at equal response length
ROW_COLUMNS = [*COLUMNS, "paired"]  # a claims table before judging: the design of each row's test too
CURVES = "raw effect (of the mean curves: no per-sample adjustment for length; the caveats give the lengths)"
POWER = 0.8  # n_to_decide: the samples per side at which the test would pass this often
TAIL_DRAWS = 10  # below this many draws beyond zero, the percentile p is only a bound


def boot_p(draws: np.ndarray, effect: float, null: float = 0.0) -> float:
    """Two-sided bootstrap p-value of 'the effect is ``null``'.

    The share of draws beyond ``null``, doubled; where fewer than ``TAIL_DRAWS`` draws lie beyond it that
    share only says p < 10 / draws, which Holm over a table of hundreds of rows would turn into
    'inconclusive' however large the effect, so the tail is then extrapolated by a normal approximation
    with the bootstrap standard error (the larger of the two is returned).
    """
    draws = draws[np.isfinite(draws)] - null
    effect = effect - null
    if not len(draws):
        return float("nan")
    beyond = min((draws <= 0).sum(), (draws >= 0).sum())
    p = 2 * beyond / len(draws)
    if beyond < TAIL_DRAWS:
        se = draws.std(ddof=1) if len(draws) > 1 else 0.0
        wald = float(2 * stats.norm.sf(abs(effect) / se)) if se > 0 else (0.0 if effect else 1.0)
        p = max(p, wald)
    return float(min(1.0, p))


def equivalence_p(draws: np.ndarray, effect: float, margin: float) -> float:
    """Two one-sided tests of 'the effect lies within ±margin' from its bootstrap draws (the larger of the
    two one-sided p-values, each the share of draws beyond its bound with a normal tail as in boot_p)."""
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return float("nan")
    se = draws.std(ddof=1) if len(draws) > 1 else 0.0
    if se == 0:
        return float(abs(effect) >= margin)
    one_sided = [max(float((draws >= margin).mean()), float(stats.norm.sf((margin - effect) / se))),
                 max(float((draws <= -margin).mean()), float(stats.norm.cdf((-margin - effect) / se)))]
    return float(min(1.0, max(one_sided)))


def summary(effect: float, draws: np.ndarray, kind: str, n: int, why: str = "contrasts of different cells") -> dict:
    """A bootstrap row (a kind for which no exchange of rows is a null): effect, CI, the bootstrap p never below
    the floor of an exact paired test of ``n`` units, and z = effect / bootstrap SE."""
    lo, hi = interval(draws)
    design = Design(True, int(n), int(n))
    finite = draws[np.isfinite(draws)]
    spread = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0
    return {"effect": float(effect), "ci_low": float(lo), "ci_high": float(hi),
            "p": max(boot_p(draws, effect), design.floor), "effect_kind": kind, "n": int(n), "paired": True,
            "test": f"bootstrap ({why}; floor {design.floor:.2g})", "z": float(effect) / spread if spread else np.nan,
            "rests_on": CURVES}


def judge(table: pd.DataFrame, signs: pd.Series, margins: pd.Series) -> pd.DataFrame:
    """Holm over the table's module rows, then each row's verdict: holds (significant in the claimed
    direction, or within the margin for an equivalence claim), fails (significant the other way, or the CI
    outside the margin), inconclusive; ``signs``/``margins``: per row, from its claim."""
    table = table.astype({"verdict": object, "p_holm": float})
    rows = table.verdict.isna().to_numpy()
    table.loc[rows, "p_holm"] = holm(table.loc[rows, "p"].to_numpy(dtype=float))
    direction = signs.to_numpy(dtype=float)
    on_adjusted = np.array([rests_on_adjusted(r) for r in table.rests_on])
    effect = np.where(on_adjusted, table.adjusted.to_numpy(dtype=float), table.effect.to_numpy(dtype=float))
    sign = np.sign(effect) * direction
    significant = table.p_holm.to_numpy(dtype=float) < ALPHA
    two_sided = direction == 0
    verdict = np.where(significant & ((sign > 0) | two_sided), "holds",
                       np.where(significant & (sign < 0), "fails", "inconclusive"))
    margin = margins.to_numpy(dtype=float)
    outside = (table.ci_low.to_numpy(dtype=float) > margin) | (table.ci_high.to_numpy(dtype=float) < -margin)
    verdict = np.where(np.isfinite(margin), np.where(significant, "holds", np.where(outside, "fails", "inconclusive")),
                       verdict)
    table.loc[rows, "verdict"] = verdict[rows]
    table.loc[rows, "n_to_decide"] = samples_to_decide(table.loc[rows], margin[rows])
    return table


def rests_on_adjusted(rests_on) -> bool:
    """Whether a row's verdict rests on its length-adjusted effect (``rests_on`` may be NaN)."""
    return str(rests_on).startswith(ADJUSTED)


def samples_to_decide(rows: pd.DataFrame, margins: np.ndarray) -> np.ndarray:
    """Per inconclusive row, an estimate of the samples per side at which its test would pass at its Holm
    rank with probability ``POWER``, at a shrunken effect: the row's z (its statistic over the null spread;
    for an equivalence claim the distance to the nearer bound) shrunk by the positive-part James-Stein factor
    1 - 1/z^2 (the observed effect of a row picked for being large overstates the true one), the spread
    shrinking as 1/sqrt(n), so z_needed = z_threshold + z_power; and never fewer than the exact test needs
    for its floor to lie below the threshold (2 / 2^n paired, 2 / C(2n, n) unpaired). NaN where the row is
    decided, or where no n would do (|z| <= 1: a shrunken effect of 0)."""
    p = rows.p.to_numpy(dtype=float)
    finite = np.isfinite(p)
    rank = np.empty(len(p))
    rank[np.argsort(np.where(finite, p, np.inf), kind="stable")] = np.arange(len(p))
    threshold = ALPHA / (finite.sum() - rank)
    two_sided = ~np.isfinite(margins)
    needed_z = stats.norm.isf(np.where(two_sided, threshold / 2, threshold)) + stats.norm.isf(1 - POWER)
    z = np.abs(rows.z.to_numpy(dtype=float))
    shrunk = z * np.clip(1 - 1 / np.where(z > 0, z, np.nan) ** 2, 0, None)
    n = rows.n.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.ceil(n * (needed_z / shrunk) ** 2)
    paired = rows.paired.to_numpy(dtype=bool) if "paired" in rows else np.ones(len(rows), bool)
    floors = np.array([smallest_n(t, bool(pr)) if 0 < t < 1 else 0 for t, pr in zip(threshold, paired)])
    keep = (rows.verdict.to_numpy() == "inconclusive") & finite & (shrunk > 0) & np.isfinite(needed)
    return np.where(keep, np.maximum(np.maximum(needed, floors), n + 1), np.nan)


def module_summaries(table: pd.DataFrame) -> pd.DataFrame:
    """One 'all modules' row per (claim, task): holds if most modules hold and none fails (fails alike)."""
    rows = []
    for (claim, task), part in table[table.module != ALL].groupby(["claim", "task"], sort=False):
        counts = part.verdict.value_counts()
        holds, fails, n = int(counts.get("holds", 0)), int(counts.get("fails", 0)), len(part)
        verdict = ("holds" if holds > n / 2 and not fails else "fails" if fails > n / 2 and not holds
                   else "inconclusive")
        first = part.iloc[0]
        rows.append({"claim": claim, "task": task, "module": ALL, "statement": first.statement,
                     "definition": first.definition, "verdict": verdict, "effect": float(part.effect.median()),
                     "effect_kind": f"median over modules; {holds} of {n} hold, {fails} fail", "a": first.a,
                     "b": first.b, "n": int(part.n.min()), "caveats": first.caveats})
    return pd.DataFrame(rows)
