"""Which differences between conditions are real: paired and unpaired tests, Holm correction.

Per (pair, module, layer or segment): a Wilcoxon signed-rank test when the same prompts appear
in both conditions (paired on them), Mann-Whitney U otherwise; Holm correction over the whole
table of a metric (per-layer tests: over the layers of a pair and module); rank-biserial effect
size; the relative change of the mean with a bootstrap CI; and per layer, each pair's relative change with its CI
(``difference_table``: curves.csv's rows with ``vs``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as st

from layergrad.analysis.curves import SEGMENTS, interval, modules_of, segment_values

MIN_PAIRED = 5


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok])]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def paired_index(prompts_a: pd.Series, prompts_b: pd.Series) -> list[tuple[str, str]] | None:
    """(sample_a, sample_b) ids with the same prompt, when most samples pair up; else None."""
    a = prompts_a[~prompts_a.duplicated(keep=False)]
    b = prompts_b[~prompts_b.duplicated(keep=False)]
    by_prompt = dict(zip(b.values, b.index))
    pairs = [(sid, by_prompt[p]) for sid, p in zip(a.index, a.values) if p in by_prompt]
    if len(pairs) < MIN_PAIRED or len(pairs) < 0.5 * min(len(prompts_a), len(prompts_b)):
        return None
    return pairs


def compare(x: np.ndarray, y: np.ndarray, paired: bool) -> dict:
    """Test and effect size of y vs x (rank-biserial: + means y tends to be larger)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if paired:
            diff = y - x
            if np.allclose(diff, 0):
                return {"test": "wilcoxon", "statistic": np.nan, "p": 1.0, "effect": 0.0}
            res = st.wilcoxon(y, x, zero_method="wilcox")
            ranks = st.rankdata(np.abs(diff[diff != 0]))
            plus, minus = ranks[diff[diff != 0] > 0].sum(), ranks[diff[diff != 0] < 0].sum()
            return {"test": "wilcoxon", "statistic": float(res.statistic), "p": float(res.pvalue),
                    "effect": float((plus - minus) / (plus + minus))}
        res = st.mannwhitneyu(y, x, alternative="two-sided")
        return {"test": "mann-whitney", "statistic": float(res.statistic), "p": float(res.pvalue),
                "effect": float(2 * res.statistic / (len(x) * len(y)) - 1)}


def relative_change_ci(x: np.ndarray, y: np.ndarray, paired: bool, n_boot: int, rng) -> tuple[float, float, float]:
    """mean(y) / mean(x) - 1 and its bootstrap interval (pairs resampled together when paired)."""
    point = y.mean() / x.mean() - 1 if x.mean() else np.nan
    if paired:
        idx = rng.integers(0, len(x), (n_boot, len(x)))
        draws = y[idx].mean(1) / x[idx].mean(1) - 1
    else:
        draws = y[rng.integers(0, len(y), (n_boot, len(y)))].mean(1) / x[rng.integers(0, len(x), (n_boot, len(x)))].mean(1) - 1
    lo, hi = interval(draws)
    return float(point), float(lo), float(hi)


def compare_columns(x: np.ndarray, y: np.ndarray, paired: bool) -> list[dict]:
    """``compare`` of every column of (n, k) arrays, vectorised where SciPy's choice of method
    ('auto') is the same for all columns, one by one where it is not (equal results)."""
    out: list[dict | None] = [None] * x.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if paired:
            diff = y - x
            clean = np.array([(d != 0).all() and len(np.unique(np.abs(d))) == len(d) for d in diff.T])
            groups = [(clean, "auto"), (~clean, "asymptotic" if len(diff) > 13 else None)]
            effects = rank_biserials(diff)
            for columns, method in groups:
                columns = np.flatnonzero(columns & ~np.all(np.isclose(diff, 0), axis=0))
                if method and len(columns):
                    res = st.wilcoxon(y[:, columns], x[:, columns], zero_method="wilcox", method=method, axis=0)
                    for j, stat, p in zip(columns, np.atleast_1d(res.statistic), np.atleast_1d(res.pvalue)):
                        out[j] = {"test": "wilcoxon", "statistic": float(stat), "p": float(p),
                                  "effect": float(effects[j])}
        else:  # SciPy's 'auto': exact when one side has <= 8 values and there are no ties
            tied = (np.diff(np.sort(np.vstack([x, y]), axis=0), axis=0) == 0).any(axis=0)
            small = min(len(x), len(y)) <= 8
            for columns, method in ((~tied, "exact" if small else "asymptotic"), (tied, "asymptotic")):
                columns = np.flatnonzero(columns)
                if len(columns):
                    res = st.mannwhitneyu(y[:, columns], x[:, columns], alternative="two-sided", method=method, axis=0)
                    for j, stat, p in zip(columns, np.atleast_1d(res.statistic), np.atleast_1d(res.pvalue)):
                        out[j] = {"test": "mann-whitney", "statistic": float(stat), "p": float(p),
                                  "effect": float(2 * stat / (len(x) * len(y)) - 1)}
    return [r if r is not None else compare(x[:, j], y[:, j], paired) for j, r in enumerate(out)]


def rank_biserials(diff: np.ndarray) -> np.ndarray:
    """``rank_biserial`` of every column of (n, k) paired differences at once (zeros left out of the ranks)."""
    nonzero = np.where(diff != 0, np.abs(diff), np.nan)
    ranks = st.rankdata(nonzero, axis=0, nan_policy="omit")
    plus = np.nansum(np.where(diff > 0, ranks, 0.0), axis=0)
    minus = np.nansum(np.where(diff < 0, ranks, 0.0), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(plus + minus > 0, (plus - minus) / (plus + minus), 0.0)


def rank_biserial(diff: np.ndarray) -> float:
    """(R+ - R-) / (R+ + R-) over the non-zero paired differences."""
    nonzero = diff[diff != 0]
    ranks = st.rankdata(np.abs(nonzero))
    plus, minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    return float((plus - minus) / (plus + minus)) if plus + minus else 0.0


def tests_table(matrices: dict, prompts: dict[str, pd.Series], pairs, metric: str, n_boot: int,
                seed: int) -> pd.DataFrame:
    """Every (pair, module, unit) comparison, unit = a layer or a segment (auto rule); a pair's modules tested in
    one call where they hold the same samples (the same results as one by one)."""
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in pairs:
        found = []
        for module in modules_of(matrices, a, b):
            ma, mb = matrices[(a, module)], matrices[(b, module)]
            pairing = paired_index(prompts[a].reindex(ma.index).dropna(), prompts[b].reindex(mb.index).dropna())
            if pairing:
                ma, mb = ma.loc[[p[0] for p in pairing]], mb.loc[[p[1] for p in pairing]]
            if len(ma) < 2 or len(mb) < 2:
                continue
            units = [f"layer {int(c)}" for c in ma.columns] + list(SEGMENTS)
            x = np.column_stack([ma.to_numpy(), segment_values(ma)[list(SEGMENTS)].to_numpy()])
            y = np.column_stack([mb.to_numpy(), segment_values(mb)[list(SEGMENTS)].to_numpy()])
            found.append((module, units, x, y, bool(pairing)))
        results = batched_compare(found)
        for (module, units, x, y, paired), compared in zip(found, results):
            mean_x, mean_y = x.mean(0), y.mean(0)
            for j, (unit, result) in enumerate(zip(units, compared)):
                xj, yj = x[:, j], y[:, j]
                if unit.startswith("layer"):  # CIs for segments only (the findings quote those)
                    change = (float(mean_y[j] / mean_x[j] - 1) if mean_x[j] else np.nan, np.nan, np.nan)
                else:
                    change = relative_change_ci(xj, yj, paired, n_boot, rng)
                rows.append({"a": a, "b": b, "module": module, "metric": metric, "unit": unit,
                             "mean_a": float(mean_x[j]), "mean_b": float(mean_y[j]), "rel_change": change[0],
                             "rel_change_low": change[1], "rel_change_high": change[2],
                             "n_a": len(xj), "n_b": len(yj), "paired": paired, **result})
    table = pd.DataFrame(rows)
    if len(table):
        table["family"] = np.where(table.unit.str.startswith("layer"), table.a + "|" + table.b + "|" + table.module,
                                   "segments")
        table["p_holm"] = table.groupby("family")["p"].transform(lambda p: pd.Series(holm(p), index=p.index))
    return table


def batched_compare(found: list) -> list[list[dict]]:
    """``compare_columns`` of every (module, units, x, y, paired) of a pair, the modules with the same design and
    sample counts in one call."""
    out: list = [None] * len(found)
    by_design: dict = {}
    for i, (_, _, x, y, paired) in enumerate(found):
        by_design.setdefault((paired, len(x), len(y)), []).append(i)
    for (paired, _, _), members in by_design.items():
        widths = [found[i][2].shape[1] for i in members]
        compared = compare_columns(np.hstack([found[i][2] for i in members]),
                                   np.hstack([found[i][3] for i in members]), paired)
        for i, start, width in zip(members, np.cumsum([0] + widths[:-1]), widths):
            out[i] = compared[start:start + width]
    return out


DIFFERENCE_COLUMNS = ["group", "vs", "module", "layer", "metric", "mean", "ci_low", "ci_high", "n"]


def difference_table(matrices: dict, pairs: list[tuple[str, str]], prompts: dict, metric: str, n_boot: int,
                     seed: int) -> pd.DataFrame:
    """Per pair (a, b), module and layer: b's mean over a's, minus 1, with a bootstrap CI (prompts resampled together
    where the two share them; one set of resamples for a pair's modules): rows of curves.csv with ``vs`` = a
    (``mean`` holds the relative change)."""
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in pairs:
        weights: dict = {}  # (paired, n_a, n_b) -> the pair's resample weights, shared by its modules
        for module in modules_of(matrices, a, b):
            ma, mb = matrices[(a, module)], matrices[(b, module)]
            pairing = (paired_index(prompts[a].reindex(ma.index).dropna(), prompts[b].reindex(mb.index).dropna())
                       if a in prompts and b in prompts else None)
            va, vb = (ma.loc[[p[0] for p in pairing]].to_numpy(), mb.loc[[p[1] for p in pairing]].to_numpy()) \
                if pairing else (ma.to_numpy(), mb.to_numpy())
            key = (bool(pairing), len(va), len(vb))
            if key not in weights:
                wa = resample_weights(rng, len(va), n_boot)
                weights[key] = (wa, wa if pairing else resample_weights(rng, len(vb), n_boot))
            wa, wb = weights[key]
            with np.errstate(divide="ignore", invalid="ignore"):
                point = vb.mean(0) / va.mean(0) - 1
                lo, hi = interval((wb @ vb) / (wa @ va) - 1)
            for j, layer in enumerate(ma.columns):
                rows.append({"group": b, "vs": a, "module": module, "layer": int(layer), "metric": metric,
                             "mean": point[j], "ci_low": lo[j], "ci_high": hi[j], "n": min(len(va), len(vb))})
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)


def resample_weights(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n): each bootstrap resample of n rows as the share of it each row makes up."""
    from layergrad.analysis.curves import bootstrap_means

    return bootstrap_means(np.eye(n), n_boot, rng)
