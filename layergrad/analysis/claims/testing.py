"""From effects to verdicts: Holm over a table, the verdict of each row by its claim's direction (or equivalence
margin) — ``confounded`` where the design cannot separate the claim's contrast from a confound —, the 'all
modules' summaries of kinds that cannot test one, and for an inconclusive row the samples per side at which its
test would pass with 80% probability; the bootstrap p of the kinds no randomization test serves."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from layergrad.analysis.claims.context import ALL
from layergrad.analysis.claims.randomization import Design, smallest_n
from layergrad.analysis.curves import interval
from layergrad.analysis.significance import holm

ALPHA = 0.05
COLUMNS = ["claim", "task", "module", "statement", "definition", "verdict", "raw_verdict", "effect", "ci_low",
           "ci_high", "effect_kind", "effect_geometric", "adjusted", "adjusted_low", "adjusted_high", "adjusted_curved",
           "sensitive", "rests_on", "confounded_by", "effect_summed_loss", "a", "b", "p", "p_holm", "n", "n_to_decide",
           "n_to_decide_low", "n_to_decide_high", "stability", "unstable", "test", "z", "caveats"]
ADJUSTED = "adjusted"  # rests_on of a row whose verdict rests on its effect at equal confounds
ROW_COLUMNS = [*COLUMNS, "paired", "p_curved", "margin"]  # a claims table before judging: its tests' design, the
# curved fit's p, a row's own equivalence margin (where its kind sets one)
CURVES = "raw effect (of the mean curves: no per-sample adjustment)"
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
    """Holm over the table's tested rows, then each row's verdict: holds (significant in the claimed direction, or
    within the margin for an equivalence claim), fails (significant the other way, or the CI outside the margin),
    inconclusive; ``confounded`` where the row names a confound the design cannot separate from its contrast (what
    the raw effect would say goes to ``raw_verdict``). ``sensitive``: the verdict a curved confound fit gives differs.
    ``signs``/``margins``: per row, from its claim."""
    table = table.astype({"verdict": object, "raw_verdict": object, "sensitive": object, "p_holm": float})
    rows = table.verdict.isna().to_numpy()
    table.loc[rows, "p_holm"] = holm(table.loc[rows, "p"].to_numpy(dtype=float))
    direction = signs.to_numpy(dtype=float)
    margin = margins.to_numpy(dtype=float)
    on_adjusted = np.array([rests_on_adjusted(r) for r in table.rests_on], dtype=bool)
    effect = np.where(on_adjusted, table.adjusted.to_numpy(dtype=float), table.effect.to_numpy(dtype=float))
    significant = table.p_holm.to_numpy(dtype=float) < ALPHA
    ci = table.ci_low.to_numpy(float), table.ci_high.to_numpy(float)
    verdict = verdicts(effect, significant, direction, margin, *ci)
    threshold = holm_thresholds(table.p.to_numpy(dtype=float), rows)
    with np.errstate(invalid="ignore"):
        curved_significant = table.p_curved.to_numpy(dtype=float) < threshold
    curved = verdicts(table.adjusted_curved.to_numpy(dtype=float), curved_significant, direction, margin, *ci)
    confounded = np.array([isinstance(c, str) and bool(c) for c in table.confounded_by], dtype=bool)
    table.loc[rows, "sensitive"] = (on_adjusted & np.isfinite(table.p_curved.to_numpy(dtype=float))
                                    & (curved != verdict))[rows]
    table.loc[rows & confounded, "raw_verdict"] = verdict[rows & confounded]
    table.loc[rows, "verdict"] = np.where(confounded, "confounded", verdict)[rows]
    decide = samples_to_decide(table.loc[rows], margin[rows], threshold[rows])
    for column, values in decide.items():
        table.loc[rows, column] = values
    return table


def verdicts(effect, significant, direction, margin, ci_low, ci_high) -> np.ndarray:
    """holds / fails / inconclusive of each row from its effect's sign, significance and claim."""
    sign = np.sign(effect) * direction
    two_sided = direction == 0
    verdict = np.where(significant & ((sign > 0) | two_sided), "holds",
                       np.where(significant & (sign < 0), "fails", "inconclusive"))
    outside = (ci_low > margin) | (ci_high < -margin)
    return np.where(np.isfinite(margin), np.where(significant, "holds", np.where(outside, "fails", "inconclusive")),
                    verdict)


def holm_thresholds(p: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per row of ``rows``, the level its p meets at its Holm rank: ALPHA / (rows tested - rank) (NaN elsewhere)."""
    out = np.full(len(p), np.nan)
    tested = np.flatnonzero(rows & np.isfinite(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    out[order] = ALPHA / (len(order) - np.arange(len(order)))
    return out


def rests_on_adjusted(rests_on) -> bool:
    """Whether a row's verdict rests on its effect at equal confounds (``rests_on`` may be NaN)."""
    return str(rests_on).startswith(ADJUSTED)


def samples_to_decide(rows: pd.DataFrame, margins: np.ndarray, thresholds: np.ndarray) -> dict:
    """Per inconclusive row, the samples per side at which a new study like it would decide (pass its test at its
    Holm level) with probability ``POWER``, and the range the effect's CI allows.

    ``n_to_decide`` is a predictive power calculation: the power at n averaged over where the current data put the
    effect (a normal posterior from a flat prior: mean z, sd 1 in units of the current standard error), so that
    the number is met on average, not only were the observed effect the true one; it has no answer where the data
    give under 80% chance that the effect has its observed sign (|z| below 0.84), however large n. The range:
    the n at which the test has 80% power were the true effect the CI's bound farther from 0 (``_low``) and the
    bound nearer 0 (``_high``, none where the CI spans 0). The standard error shrinks as 1/sqrt(n); never fewer than
    the exact test needs for its floor to lie below the threshold, nor fewer than now."""
    p = rows.p.to_numpy(dtype=float)
    two_sided = ~np.isfinite(margins)
    z_level = stats.norm.isf(np.where(two_sided, thresholds / 2, thresholds))
    z_power = stats.norm.isf(1 - POWER)
    z = np.abs(rows.z.to_numpy(dtype=float))
    n = rows.n.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = predictive_ratio(z, z_level, z_power)
        bounds = bound_ratios(rows)
        at_bound = [np.ceil(n * ((z_level + z_power) / (z * b)) ** 2) for b in bounds]
    paired = rows.paired.to_numpy(dtype=bool) if "paired" in rows else np.ones(len(rows), bool)
    floors = np.array([smallest_n(t, bool(pr)) if 0 < t < 1 else 0 for t, pr in zip(thresholds, paired)])
    keep = (rows.verdict.to_numpy() == "inconclusive") & np.isfinite(p)
    least = lambda needed: np.where(keep & np.isfinite(needed) & (needed > 0),
                                    np.maximum(np.maximum(needed, floors), n + 1), np.nan)
    return {"n_to_decide": least(np.ceil(n * r ** 2)), "n_to_decide_low": least(at_bound[0]),
            "n_to_decide_high": least(at_bound[1])}


def predictive_ratio(z: np.ndarray, z_level: np.ndarray, z_power: float) -> np.ndarray:
    """sqrt(n_new / n) at which the predictive power Phi((z r - z_level) / sqrt(1 + r^2)) reaches Phi(z_power): the
    larger root of (z^2 - z_power^2) r^2 - 2 z z_level r + z_level^2 - z_power^2 = 0; NaN where |z| <= z_power."""
    a = z ** 2 - z_power ** 2
    disc = (z * z_level) ** 2 - a * (z_level ** 2 - z_power ** 2)
    return np.where(a > 0, (z * z_level + np.sqrt(np.maximum(disc, 0))) / a, np.nan)


def bound_ratios(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(far, near): the CI bounds farther from and nearer to 0 over the effect, on the scale the test sees (log for a
    relative effect); near is NaN where the CI spans 0."""
    on_adjusted = np.array([rests_on_adjusted(r) for r in rows.rests_on], dtype=bool)
    pick = lambda a, b: np.where(on_adjusted, rows[a].to_numpy(dtype=float), rows[b].to_numpy(dtype=float))
    effect, low, high = pick("adjusted", "effect"), pick("adjusted_low", "ci_low"), pick("adjusted_high", "ci_high")
    relative = np.array(["relative" in str(k) for k in rows.effect_kind], dtype=bool) | on_adjusted
    scale = lambda v: np.where(relative, np.log1p(np.clip(v, -1 + 1e-12, None)), v)
    effect, low, high = scale(effect), scale(low), scale(high)
    far = np.where(np.abs(high) > np.abs(low), high, low) / effect
    near = np.where(np.sign(low) == np.sign(high), np.where(np.abs(high) > np.abs(low), low, high) / effect, np.nan)
    return np.abs(far), np.where(near > 0, near, np.nan)


def module_summaries(table: pd.DataFrame) -> pd.DataFrame:
    """One 'all modules' row per (claim, task) that has none of its own (a kind that cannot test the mean over its
    rows): holds if most rows hold and none fails (fails alike), confounded if most are."""
    rows = []
    has_own = set(zip(table.claim[table.module == ALL], table.task[table.module == ALL]))
    for (claim, task), part in table[table.module != ALL].groupby(["claim", "task"], sort=False):
        if (claim, task) in has_own:
            continue
        counts = part.verdict.value_counts()
        holds, fails, n = int(counts.get("holds", 0)), int(counts.get("fails", 0)), len(part)
        confounded = int(counts.get("confounded", 0))
        verdict = ("holds" if holds > n / 2 and not fails else "fails" if fails > n / 2 and not holds
                   else "confounded" if confounded > n / 2 else "inconclusive")
        first = part.iloc[0]
        rows.append({"claim": claim, "task": task, "module": ALL, "statement": first.statement,
                     "definition": first.definition, "verdict": verdict, "effect": float(part.effect.median()),
                     "effect_kind": f"median over rows (no one test of them); {holds} of {n} hold, {fails} fail",
                     "a": first.a, "b": first.b, "n": int(part.n.min()), "caveats": first.caveats})
    return pd.DataFrame(rows)
