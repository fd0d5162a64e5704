"""The follow-up paper's claims (arXiv 2504.10766), registered in the claim registry (claims.py).

Conditions by name: ``<metric>/<pool>/high`` and ``.../low`` (a quality cell: the 200 records of a
pool with the highest / lowest value of a quality metric), ``reasoning/s1-r1`` and
``reasoning/gsm8k-r1`` (R1 reasoning traces). Per cell and module:

- F1 high quality gives a lower nuclear norm, F2 a higher effective rank (relative change of the
  per-sample mean over all layers, high vs low; Mann-Whitney: different records);
- F3 the effective rank separates high from low better than the nuclear norm (AUROC of each in its
  claimed direction, the same stratified bootstrap resamples for both: CI of the difference);
- F4 the s1.1 traces give the largest effective rank of all the run's data (relative difference to
  the largest other condition);
- F5 (``compare`` of two runs) layer-wise patterns agree: Spearman ρ of the two models' mean curves
  over relative depth (the claim is within a model family: the caveat says whether the runs are one);
- F6 same-layer (q×o, k×v) and adjacent-layer gradient cosines stay near zero: an equivalence claim,
  holds when the mean cosine lies within ±0.1 (two one-sided tests), fails when its CI lies outside.

Every F1-F3 cell's caveats say how the two subsets' lengths overlap, the AUROC of length, loss and
IFD beside the gradient's, what the profile adds beyond them, and for F1/F2 the same contrast under
random weights (``--reinit``) when the run has that control; F4's the lengths and the baselines' AUROC
of the traces against the condition they are compared with; F6's the condition's response lengths.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as st

from layergrad.analysis.claims import (Claim, Context, Controls, baseline_auroc_caveat, boot_p, length_caveat,
                                       range_caveat, register_claim, summary)
from layergrad.analysis.curves import interval
from layergrad.analysis.separability import auroc, auroc_rows, bootstrap_indices
from layergrad.analysis.significance import compare, relative_change_ci

MARGIN = 0.1  # |cosine| below this is "near zero" (F6)
DEPTH_POINTS = 20  # relative-depth grid on which two models' curves are compared (F5)


def per_sample_mean(ctx: Context, metric: str, group: str, module: str) -> pd.Series | None:
    matrix = ctx.of(metric).get((group, module))
    return None if matrix is None or not len(matrix) else matrix.mean(axis=1)


def mean_change(metric: str):
    """F1/F2: relative change of the per-sample mean over all layers, high vs low."""
    def statistic(ctx: Context, found: dict, reasoning: dict, module: str) -> dict | None:
        low, high = (per_sample_mean(ctx, metric, found[s], module) for s in ("low", "high"))
        if low is None or high is None or len(low) < 2 or len(high) < 2:
            return None
        x, y = low.to_numpy(), high.to_numpy()
        effect, lo, hi = relative_change_ci(x, y, False, ctx.n_boot, ctx.rng)
        return {"effect": effect, "ci_low": lo, "ci_high": hi, "p": compare(x, y, False)["p"],
                "effect_kind": f"relative change of the mean {metric.replace('_', ' ')} over all layers, high vs low",
                "n": min(len(x), len(y))}
    return statistic


def separation_gain(ctx: Context, found: dict, reasoning: dict, module: str) -> dict | None:
    """F3: AUROC(effective rank higher in high) - AUROC(nuclear norm lower in high), paired bootstrap."""
    values = {}
    for metric, sign in (("effective_rank", 1.0), ("nuclear_norm", -1.0)):
        parts = [per_sample_mean(ctx, metric, found[s], module) for s in ("low", "high")]
        if any(p is None for p in parts):
            return None
        values[metric] = parts, sign
    (low_e, high_e), _ = values["effective_rank"]
    shared = [low_e.index.intersection(values["nuclear_norm"][0][0].index),
              high_e.index.intersection(values["nuclear_norm"][0][1].index)]
    if min(map(len, shared)) < 2:
        return None
    labels = np.r_[np.zeros(len(shared[0])), np.ones(len(shared[1]))].astype(int)
    scores = {m: sign * np.r_[low.loc[shared[0]].to_numpy(), high.loc[shared[1]].to_numpy()]
              for m, ((low, high), sign) in values.items()}
    index = bootstrap_indices(labels, ctx.n_boot, ctx.rng)
    draws = auroc_rows(labels[index], scores["effective_rank"][index]) - auroc_rows(labels[index],
                                                                                    scores["nuclear_norm"][index])
    a_e, a_n = auroc(labels, scores["effective_rank"]), auroc(labels, scores["nuclear_norm"])
    row = summary(a_e - a_n, draws, f"AUROC effective rank {a_e:.2f} minus nuclear norm {a_n:.2f}, high vs low",
                  int(min(len(shared[0]), len(shared[1]))))
    row["p"] = max(row["p"], rank_test_floor(len(shared[0]), len(shared[1])))
    return row


def rank_test_floor(n_low: int, n_high: int) -> float:
    """The smallest two-sided p an exact rank test can reach with these counts, 2 / C(n_low + n_high, n_low):
    on a few samples a bootstrap of AUROCs (every resample perfectly separated) is not more certain than that."""
    from math import comb

    return min(1.0, 2.0 / comb(n_low + n_high, n_low))


def largest_rank(ctx: Context, found: dict, reasoning: dict, module: str) -> dict | None:
    """F4: the s1 traces' mean effective rank against the largest of every other condition's."""
    ranks = ctx.of("effective_rank")
    target = found["s1-r1"]
    mine = per_sample_mean(ctx, "effective_rank", target, module)
    others = {g: m.mean(axis=1) for (g, mod), m in ranks.items() if mod == module and g != target and len(m)}
    if mine is None or not others:
        return None
    best = max(others, key=lambda g: others[g].mean())
    x, y = others[best].to_numpy(), mine.to_numpy()
    effect, lo, hi = relative_change_ci(x, y, False, ctx.n_boot, ctx.rng)
    draws = y[ctx.rng.integers(0, len(y), (ctx.n_boot, len(y)))].mean(1) / \
        x[ctx.rng.integers(0, len(x), (ctx.n_boot, len(x)))].mean(1) - 1
    return {"effect": effect, "ci_low": lo, "ci_high": hi, "p": boot_p(draws, effect), "a": best, "b": target,
            "effect_kind": f"relative difference of the mean effective rank, s1 traces vs the largest other ({best})",
            "n": min(len(x), len(y))}


def cosine_rows(ctx: Context, found: dict) -> list[str]:
    """F6's rows: '<pair or kind> · <condition style>' for every cosine the run has."""
    rows = []
    for style, group in found.items():
        for metric, label in (("cosine_pair", lambda m: {"q_proj": "q×o", "k_proj": "k×v"}.get(m, m)),
                              ("cosine_next", lambda m: f"{m} × next layer")):
            rows += [f"{label(m)} · {style}" for (g, m) in ctx.of(metric) if g == group]
    return rows


def near_zero(ctx: Context, found: dict, reasoning: dict, row: str) -> dict | None:
    """F6: the mean cosine (per sample over layers, then over samples) within ±MARGIN, two one-sided tests."""
    label, _, style = row.rpartition(" · ")
    if label.endswith(" × next layer"):
        metric, module = "cosine_next", label[:-len(" × next layer")]
    else:
        metric, module = "cosine_pair", {"q×o": "q_proj", "k×v": "k_proj"}.get(label, label)
    values = per_sample_mean(ctx, metric, found[style], module)
    if values is None or len(values) < 2:
        return None
    v = values.to_numpy()
    draws = v[ctx.rng.integers(0, len(v), (ctx.n_boot, len(v)))].mean(1)
    lo, hi = interval(draws)
    effect, se = float(v.mean()), float(draws.std(ddof=1))
    p = max(st.norm.cdf((effect - MARGIN) / se), st.norm.cdf((-MARGIN - effect) / se)) if se > 0 else \
        float(abs(effect) >= MARGIN)
    return {"effect": effect, "ci_low": float(lo), "ci_high": float(hi), "p": float(p), "a": found[style],
            "b": found[style], "effect_kind": f"mean {metric.replace('_', ' ')} (equivalence margin ±{MARGIN})",
            "n": len(v)}


def relative_depth_curve(matrix: np.ndarray) -> np.ndarray:
    """(..., L) curve -> (..., DEPTH_POINTS) on relative depth 0..1 (linear interpolation)."""
    layers = np.linspace(0, 1, matrix.shape[-1])
    grid = np.linspace(0, 1, DEPTH_POINTS)
    return np.apply_along_axis(lambda c: np.interp(grid, layers, c), -1, matrix)


def pattern_agreement(ctx: Context, fa: dict, fb: dict, module: str) -> dict | None:
    """F5: Spearman ρ of the two runs' mean effective-rank curves (high subset) over relative depth."""
    ma = ctx.of("effective_rank").get((fa["high"], module))
    mb = ctx.of("effective_rank").get((fb["high"], module))
    if ma is None or mb is None or len(ma) < 2 or len(mb) < 2:
        return None
    va, vb = ma.to_numpy(), mb.to_numpy()
    ia, ib = ctx.resample(len(va), len(vb), False)
    ca, cb = relative_depth_curve(va[ia].mean(1)), relative_depth_curve(vb[ib].mean(1))
    draws = np.array([st.spearmanr(x, y).statistic for x, y in zip(ca, cb)])
    effect = float(st.spearmanr(relative_depth_curve(va.mean(0)), relative_depth_curve(vb.mean(0))).statistic)
    return summary(effect, draws, "Spearman ρ of the two models' mean effective-rank curves over relative depth "
                   "(high subset)", min(len(va), len(vb)))


def quality_caveat(row, controls: Controls, found: dict) -> str:
    """Lengths, the baselines' AUROC against the gradient's, the profile's increment, random weights."""
    notes = [length_caveat(row.a, row.b, controls.lengths)]
    sep = controls.separability
    if sep is not None and len(sep):
        rows = sep[((sep.a == row.a) & (sep.b == row.b)) | ((sep.a == row.b) & (sep.b == row.a))].set_index("score")
        base = [f"{name} {rows.loc[score, 'auroc']:.2f}" for score, name in
                (("response length (tokens)", "length"), ("loss", "loss"), ("IFD", "IFD")) if score in rows.index]
        grad = rows[(rows.kind == "gradient") & rows.index.str.startswith("mean ")]
        if base:
            text = "AUROC " + ", ".join(base)
            if len(grad):
                text += "; gradient " + ", ".join(f"{s[5:].replace('_', ' ')} {a:.2f}" for s, a in grad.auroc.items())
            notes.append(text)
    inc = controls.increment
    if inc is not None and len(inc):
        match = inc[((inc.a == row.a) & (inc.b == row.b)) | ((inc.a == row.b) & (inc.b == row.a))]
        if len(match):
            notes.append(str(match.verdict.iloc[0]))
    reinit = controls.reinit
    if reinit is not None and len(reinit) and row.claim in ("F1", "F2"):
        same = reinit[(reinit.claim == row.claim) & (reinit.task == row.task) & (reinit.module == row.module)]
        if len(same):
            r = same.iloc[0]
            notes.append(f"random weights: {r.verdict} ({r.effect * 100:+.0f}% [{r.ci_low * 100:+.0f}%, "
                         f"{r.ci_high * 100:+.0f}%])" + (" — the pattern does not need what the model learned"
                                                         if r.verdict == "holds" else ""))
    return "; ".join(n for n in notes if n)


def traces_caveat(row, controls: Controls, found: dict) -> str:
    """F4: the lengths of the traces and of the condition they are compared with, the baselines' AUROC."""
    notes = [length_caveat(row.a, row.b, controls.lengths), baseline_auroc_caveat(row.a, row.b, controls)]
    return "; ".join(n for n in notes if n)


def cosine_caveat(row, controls: Controls, found: dict) -> str:
    """F6: the condition's response lengths (longer responses average more token gradients)."""
    return range_caveat(row.a, controls.lengths)


def family_caveat(row, controls: Controls, found: dict) -> str:
    return "compares two runs: the claim is about models of one family (different sizes); across families it " \
           "predicts disagreement"


register_claim(Claim(
    "F1", "High-quality data gives lower nuclear norms than low-quality data",
    "Relative change of the per-sample mean nuclear norm over all layers, high vs low subset of a (metric, pool) "
    "cell (negative = holds); Mann-Whitney (different records).", "quality", ("high", "low"), -1, ("low", "high"),
    mean_change("nuclear_norm"), "Mann-Whitney", quality_caveat))
register_claim(Claim(
    "F2", "High-quality data gives higher effective ranks than low-quality data",
    "Relative change of the per-sample mean effective rank over all layers, high vs low (positive = holds); "
    "Mann-Whitney.", "quality", ("high", "low"), 1, ("low", "high"), mean_change("effective_rank"), "Mann-Whitney",
    quality_caveat))
register_claim(Claim(
    "F3", "Effective rank separates high from low quality better than nuclear norm",
    "AUROC of the per-sample mean effective rank (higher in high) minus that of the nuclear norm (lower in high), "
    "the same stratified bootstrap resamples for both (positive = holds).", "quality", ("high", "low"), 1,
    ("low", "high"), separation_gain, "paired bootstrap of the AUROC difference", quality_caveat))
register_claim(Claim(
    "F4", "Reasoning data (s1.1 R1 traces) gives the largest effective ranks of all the data",
    "Relative difference of the s1.1 traces' mean effective rank (all layers) to that of the run's condition with "
    "the next largest (positive = holds); bootstrap.", "traces", ("s1-r1",), 1, ("s1-r1", "s1-r1"), largest_rank,
    "bootstrap", traces_caveat,
    modules=lambda ctx, found: [m for (g, m) in ctx.of("effective_rank") if g == found["s1-r1"]]))
register_claim(Claim(
    "F5", "Within a model family the layer-wise patterns agree across sizes; across families they differ",
    "Spearman ρ of the two runs' mean effective-rank curves over relative depth, per cell and module "
    "(positive = the patterns agree); bootstrap over each run's samples.", "quality", ("high",), 1,
    ("high", "high"), pattern_agreement, "bootstrap", family_caveat, between_runs=True, metric="effective_rank"))
register_claim(Claim(
    "F6", "Same-layer (q×o, k×v) and adjacent-layer gradient cosines stay near zero for every kind of data",
    f"Mean cosine of the flattened gradients (per sample over layers, then over samples) within ±{MARGIN}: two "
    "one-sided tests (holds), the CI outside ±0.1 (fails).", ("quality", "traces"), (), 0, (), near_zero,
    "two one-sided tests (equivalence)", cosine_caveat, margin=MARGIN, modules=cosine_rows))
