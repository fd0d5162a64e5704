"""Layer-wise curves and the paper's summaries, with bootstrap confidence intervals.

Conventions (docs/guide/how-it-works.md, "The measurement"): a curve is the mean over samples of a metric per layer, after
dropping the samples whose value is not finite at some layer of that module; MAD(v) = mean
|v[i+1] - v[i]| over a segment's consecutive layers (of the mean curve); the paper's
early/middle/late splits for 26/28/32/42 layers, relative-depth thirds for any depth;
RD(a, b) = mean_l |a_l - b_l| / |a_l|.

Bootstrap: percentile intervals from B resamples of the samples (each resample's counts, one
matrix product per resample set); a statistic of the mean curve (MAD, RD) is recomputed on
every resampled curve.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from layergrad.engine.layers import PAPER_SPLITS, SEGMENTS, segment_bounds  # noqa: F401  (re-exported here)

LEVEL = 0.95


def segment_rules(n_layers: int) -> list[str]:
    return ["paper", "thirds"] if n_layers in PAPER_SPLITS else ["thirds"]


def mad(values, axis: int = -1):
    """Mean absolute difference of consecutive values along ``axis`` (NaN for fewer than two)."""
    v = np.asarray(values, dtype=float)
    if v.shape[axis] < 2:
        return np.full(np.delete(v.shape, axis), np.nan) if v.ndim > 1 else float("nan")
    out = np.abs(np.diff(v, axis=axis)).mean(axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def relative_mad(values, axis: int = -1):
    """MAD of the curve over its mean's magnitude: its flatness in its own scale, so that a curve that is only
    lower everywhere (the same shape, scaled) has the same value."""
    v = np.asarray(values, dtype=float)
    scale = np.abs(v.mean(axis=axis))
    return mad(v, axis=axis) / np.where(scale == 0, np.nan, scale)


def relative_difference(a, b, axis: int = -1):
    """The paper's RD(a, b) = mean_l |a_l - b_l| / |a_l| (a_l = 0 counts as 1e-10)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    denom = np.where(a == 0, 1e-10, np.abs(a))
    out = np.mean(np.abs(a - b) / denom, axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def net_relative_difference(a, b, axis: int = -1):
    """The net RD, |mean_l (b_l - a_l) / |a_l||: the signed differences averaged over the layers before the
    magnitude is taken, so noise that changes sign from layer to layer averages out instead of adding up (the
    paper's mean of |a_l - b_l| / |a_l| is positive however alike the two curves are)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    out = np.abs(np.mean((b - a) / np.where(a == 0, 1e-10, np.abs(a)), axis=axis))
    return float(out) if np.ndim(out) == 0 else out


def interval(draws: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap draws along axis 0."""
    tail = (1 - level) / 2 * 100
    draws = np.asarray(draws, dtype=float)
    percentile = np.percentile if not np.isnan(draws).any() else np.nanpercentile  # the same where nothing is NaN
    low, high = percentile(draws, [tail, 100 - tail], axis=0)
    return low, high


def bootstrap_means(matrix: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n, L) per-sample values -> (n_boot, L) means of resampled rows."""
    n = matrix.shape[0]
    draws = rng.integers(0, n, (n_boot, n)) + n * np.arange(n_boot)[:, None]
    counts = np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n)
    return counts @ matrix / n


# ----------------------------------------------------------------------------- per-sample tables

def sample_matrices(stats: pd.DataFrame, metric: str) -> dict[tuple[str, str], pd.DataFrame]:
    """{(group, module): samples x layers frame of ``metric``}, non-finite samples dropped
    (layers without any value, like the last layer's ``cosine_next``, are left out first)."""
    out = {}
    rows = stats[["group", "module", "sample_id", "layer", metric]]
    rows = rows[~rows.duplicated(["group", "module", "sample_id", "layer"])]  # the first value of each, as pivot_table
    wide_all = rows.set_index(["group", "module", "sample_id", "layer"])[metric].unstack("layer")
    wide_all = wide_all.replace([np.inf, -np.inf], np.nan)
    order = list(dict.fromkeys(zip(stats.group, stats.module)))
    for (group, module), wide in wide_all.groupby(level=["group", "module"], sort=False):
        wide = wide.droplevel(["group", "module"]).dropna(axis=1, how="all").dropna(how="any")
        if wide.size:
            out[(group, module)] = wide.sort_index(axis=1).sort_index()
    return {key: out[key] for key in order if key in out}


def segment_values(matrix: pd.DataFrame, rule: str = "auto") -> pd.DataFrame:
    """Per sample: the mean of its values over each segment's layers (columns = segments)."""
    bounds = segment_bounds(matrix.shape[1], rule)
    values = matrix.to_numpy()
    return pd.DataFrame({s: values[:, lo:hi].mean(1) for s, (lo, hi) in bounds.items()}, index=matrix.index)


# ----------------------------------------------------------------------------- curves and MAD

def curve_tables(matrices: dict, metric: str, n_boot: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, mad) long tables with bootstrap CIs for every (group, module)."""
    rng = np.random.default_rng(seed)
    curve_rows, mad_rows = [], []
    for (group, module), matrix in matrices.items():
        values = matrix.to_numpy()
        means = values.mean(0)
        draws = bootstrap_means(values, n_boot, rng)
        lo, hi = interval(draws)
        for j, layer in enumerate(matrix.columns):
            curve_rows.append({"group": group, "module": module, "layer": int(layer), "metric": metric,
                               "mean": means[j], "ci_low": lo[j], "ci_high": hi[j], "n": len(values)})
        for rule in segment_rules(values.shape[1]):
            for segment, (a, b) in segment_bounds(values.shape[1], rule).items():
                point = mad(means[a:b])
                mlo, mhi = interval(mad(draws[:, a:b], axis=1)) if b - a > 1 else (np.nan, np.nan)
                rlo, rhi = interval(relative_mad(draws[:, a:b], axis=1)) if b - a > 1 else (np.nan, np.nan)
                mad_rows.append({"group": group, "module": module, "metric": metric, "rule": rule,
                                 "segment": segment, "layers": f"{a}-{b - 1}", "mad": point,
                                 "ci_low": float(mlo), "ci_high": float(mhi), "mean": float(means[a:b].mean()),
                                 "mad_relative": float(relative_mad(means[a:b])) if b - a > 1 else np.nan,
                                 "mad_relative_low": float(rlo), "mad_relative_high": float(rhi),
                                 "n": len(values)})
    return pd.DataFrame(curve_rows), pd.DataFrame(mad_rows)


def rd_table(matrices: dict, pairs: list[tuple[str, str]], metric: str, n_boot: int, seed: int) -> pd.DataFrame:
    """RD(a, b) of the mean curves for every pair and module, bootstrap CI, top-5 layers."""
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in pairs:
        for module in modules_of(matrices, a, b):
            ma, mb = matrices[(a, module)], matrices[(b, module)]
            ca, cb = ma.to_numpy().mean(0), mb.to_numpy().mean(0)
            draws = relative_difference(bootstrap_means(ma.to_numpy(), n_boot, rng),
                                        bootstrap_means(mb.to_numpy(), n_boot, rng), axis=1)
            lo, hi = interval(draws)
            per_layer = np.abs(ca - cb) / np.where(ca == 0, 1e-10, np.abs(ca))
            top = np.argsort(-per_layer)[:5]
            rows.append({"a": a, "b": b, "module": module, "metric": metric, "rd": relative_difference(ca, cb),
                         "ci_low": float(lo), "ci_high": float(hi),
                         "top5_layers": ",".join(str(int(ma.columns[i])) for i in top),
                         "n_a": len(ma), "n_b": len(mb)})
    return pd.DataFrame(rows)


def modules_of(matrices: dict, a: str, b: str) -> list[str]:
    """Modules whose curves exist in both groups with the same number of layers."""
    return [m for (g, m) in matrices
            if g == a and (b, m) in matrices and matrices[(a, m)].shape[1] == matrices[(b, m)].shape[1]]


def table_rule(mad: pd.DataFrame) -> str:
    """The segment rule to show for a MAD table: the paper's when it applies, else thirds."""
    return "paper" if (mad.rule == "paper").any() else "thirds"


# ----------------------------------------------------------------------------- back-compat helpers

def curves(stats: pd.DataFrame, metric: str = "nuclear_norm") -> pd.DataFrame:
    """Mean, n per (condition, module, layer), dropping non-finite values (no CI; fast)."""
    finite = stats[np.isfinite(stats[metric].astype(float))]
    grouped = finite.groupby(["condition", "module", "layer"])[metric]
    return grouped.agg(mean="mean", n="count").reset_index()


def mad_table(stats: pd.DataFrame, metric: str = "nuclear_norm", rule: str = "auto") -> pd.DataFrame:
    """MAD of each (condition, module) mean curve per segment (no CI; the terminal summary)."""
    table = curves(stats, metric)
    rows = []
    for (condition, module), curve in table.groupby(["condition", "module"]):
        values = curve.sort_values("layer")["mean"].to_numpy()
        for segment, (lo, hi) in segment_bounds(len(values), rule).items():
            rows.append({"condition": condition, "module": module, "segment": segment,
                         "mad": mad(values[lo:hi]), "mean": float(np.mean(values[lo:hi]))})
    return pd.DataFrame(rows)
