"""Do the records' own quality scores go with the gradient's? Rank correlations, with and without
length.

For every numeric field the records carried (``meta.*`` columns: reward, IFD, difficulty, tags, ...)
and every per-sample score (the mean of each analysed metric over layers and modules) and baseline
(loss, response length, IFD when computed): Spearman's ρ and the partial Spearman correlation given
log response length (ρ of the ranks after the rank of length is regressed out of both; length is
the confound of most quality subsets), each with a percentile bootstrap CI over samples. Pooled
over all conditions of a run (``scope`` = the run's conditions joined by '+'), and per condition.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as st

from layergrad.analysis.curves import interval
from layergrad.data.samples import META_PREFIX

COLUMNS = ["scope", "field", "score", "n", "spearman", "ci_low", "ci_high", "p", "partial_spearman",
           "partial_ci_low", "partial_ci_high"]
MIN_SAMPLES = 8


def per_sample_scores(stats: pd.DataFrame, samples: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """(group, sample_id) -> every score and baseline of a sample, and its numeric record fields."""
    means = stats.groupby(["group", "sample_id"])[metrics].mean()
    means.columns = [f"mean {m}" for m in metrics]
    info = samples.set_index(["group", "sample_id"])
    base = pd.DataFrame({"loss": info.loss, "response length (tokens)": info.n_response_tokens}, index=info.index)
    if "ifd" in info.columns and info.ifd.notna().any():
        base["IFD"] = info.ifd
    fields = [c for c in info.columns if c.startswith(META_PREFIX) and pd.api.types.is_numeric_dtype(info[c])]
    return means.join(base, how="inner").join(info[fields], how="inner")


def correlation_table(stats: pd.DataFrame, samples: pd.DataFrame, metrics: list[str], runs: dict, n_boot: int,
                      seed: int) -> pd.DataFrame:
    """One row per (scope, numeric field, score)."""
    table = per_sample_scores(stats, samples, metrics)
    fields = [c for c in table.columns if c.startswith(META_PREFIX)]
    if not fields:
        return pd.DataFrame(columns=COLUMNS)
    scores = [c for c in table.columns if not c.startswith(META_PREFIX)]
    rng = np.random.default_rng(seed)
    scopes = [("+".join(groups), groups) for groups in runs.values() if len(groups) > 1]
    scopes += [(g, [g]) for groups in runs.values() for g in groups]
    rows = []
    for scope, groups in scopes:
        part = table[table.index.get_level_values("group").isin(groups)]
        length = np.log(np.maximum(part["response length (tokens)"].to_numpy(dtype=float), 1))
        for field in fields:
            for score in scores:
                row = correlation_row(part[field].to_numpy(dtype=float), part[score].to_numpy(dtype=float), length,
                                      n_boot, rng)
                if row:
                    rows.append({"scope": scope, "field": field[len(META_PREFIX):], "score": score, **row})
    return pd.DataFrame(rows, columns=COLUMNS)


def correlation_row(x: np.ndarray, y: np.ndarray, z: np.ndarray, n_boot: int, rng) -> dict | None:
    """ρ(x, y), its CI and p; the partial ρ given z and its CI (None: too few samples or a constant)."""
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    x, y, z = x[ok], y[ok], z[ok]
    if len(x) < MIN_SAMPLES or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    res = st.spearmanr(x, y)
    index = rng.integers(0, len(x), (n_boot, len(x)))
    ranks = [resample_ranks(v, index) for v in (x, y, z)]
    draws = pearson_rows(ranks[0], ranks[1])
    lo, hi = interval(draws)
    partial = partial_rows(*(st.rankdata(v)[None] for v in (x, y, z)))[0]
    plo, phi = interval(partial_rows(*ranks))
    return {"n": int(len(x)), "spearman": float(res.statistic), "ci_low": float(lo), "ci_high": float(hi),
            "p": float(res.pvalue), "partial_spearman": float(partial), "partial_ci_low": float(plo),
            "partial_ci_high": float(phi)}


def resample_ranks(v: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``scipy.stats.rankdata(v[index], axis=1)`` (average ranks) without sorting every resample: from
    how often each distinct value of ``v`` is drawn (the same numbers: sums of integers and halves)."""
    values, group = np.unique(v, return_inverse=True)
    b = index.shape[0]
    drawn = group[index]  # (B, n): which distinct value each draw is
    flat = drawn + len(values) * np.arange(b)[:, None]
    counts = np.bincount(flat.ravel(), minlength=b * len(values)).reshape(b, len(values)).astype(float)
    below = np.cumsum(counts, axis=1) - counts
    return np.take_along_axis(below + (counts + 1) / 2, drawn, axis=1)


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row pair of two (B, n) arrays (NaN for a constant row)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def partial_rows(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Partial correlation of x and y given z, row by row: (r_xy - r_xz r_yz) / sqrt((1 - r_xz²)(1 - r_yz²))."""
    rxy, rxz, ryz = pearson_rows(x, y), pearson_rows(x, z), pearson_rows(y, z)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))
