"""Layer-wise curves and the paper's summaries: MAD over layer segments, relative difference.

Conventions (PAPER.md §2): a curve is the mean over samples of a metric per layer, after
dropping the samples whose value is not finite; MAD(v) = mean |v[i+1] - v[i]| over a
segment's consecutive layers; the paper's early/middle/late splits for 26/28/32/42 layers,
relative-depth thirds for any depth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PAPER_SPLITS = {32: (10, 20), 28: (7, 21), 26: (7, 20), 42: (12, 30)}
SEGMENTS = ("early", "middle", "late", "all")


def segment_bounds(n_layers: int, rule: str = "auto") -> dict[str, tuple[int, int]]:
    """{segment: (start, stop)}; rule 'paper' (only 26/28/32/42 layers), 'thirds', or 'auto'."""
    if rule == "paper" or (rule == "auto" and n_layers in PAPER_SPLITS):
        if n_layers not in PAPER_SPLITS:
            raise ValueError(f"the paper defines no segments for {n_layers} layers")
        a, b = PAPER_SPLITS[n_layers]
    else:
        a, b = round(n_layers / 3), round(2 * n_layers / 3)
    return {"early": (0, a), "middle": (a, b), "late": (b, n_layers), "all": (0, n_layers)}


def mad(values) -> float:
    """Mean absolute difference of consecutive values (NaN for fewer than two)."""
    v = np.asarray(values, dtype=float)
    return float(np.abs(np.diff(v)).mean()) if v.size > 1 else float("nan")


def relative_difference(a, b) -> float:
    """The paper's RD(a, b) = mean_l |a_l - b_l| / |a_l| (a_l = 0 counts as 1e-10)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    denom = np.where(a == 0, 1e-10, np.abs(a))
    return float(np.mean(np.abs(a - b) / denom))


def curves(stats: pd.DataFrame, metric: str = "nuclear_norm") -> pd.DataFrame:
    """Mean, n per (condition, module, layer), dropping samples with a non-finite value."""
    finite = stats[np.isfinite(stats[metric].astype(float))]
    grouped = finite.groupby(["condition", "module", "layer"])[metric]
    return grouped.agg(mean="mean", n="count").reset_index()


def mad_table(stats: pd.DataFrame, metric: str = "nuclear_norm", rule: str = "auto") -> pd.DataFrame:
    """MAD of each (condition, module) curve per segment: the paper's table, long format."""
    table = curves(stats, metric)
    rows = []
    for (condition, module), curve in table.groupby(["condition", "module"]):
        values = curve.sort_values("layer")["mean"].to_numpy()
        for segment, (lo, hi) in segment_bounds(len(values), rule).items():
            rows.append({"condition": condition, "module": module, "segment": segment,
                         "mad": mad(values[lo:hi]), "mean": float(np.mean(values[lo:hi]))})
    return pd.DataFrame(rows)
