"""Claim kinds on one pair of conditions: the relative change of a per-sample mean (``difference``), of the mean
curve's flatness (``mad_change``), a condition against the largest other (``largest``), and two statistics'
AUROCs (``auroc_difference``)."""

from __future__ import annotations

import numpy as np

from layergrad.analysis.claims.context import Context, Where
from layergrad.analysis.claims.kinds.confounds import with_confounds
from layergrad.analysis.claims.kinds.shared import (AurocOptions, DifferenceOptions, MadOptions, Wording, first_needs,
                                                    layer_mean, module_and_layers, module_rows, pair_needs,
                                                    per_sample_mean, relative_change_draws, scope, sides)
from layergrad.analysis.claims.randomization import (CHANGE_WORDS, equivalence_test, log_ratio_or_difference, mean_test,
                                                     paired_rank_test)
from layergrad.analysis.claims.testing import equivalence_p, summary
from layergrad.analysis.curves import SEGMENTS, interval, mad, relative_mad
from layergrad.analysis.separability import auroc, auroc_rows, bootstrap_indices
from layergrad.studies.registry import claim_kind


def difference_rows(ctx: Context, spec, cell) -> list[str] | None:
    """With ``options.by_segment``, '<module> · <segment>' for every module both sides have (the mean over the
    modules too); else the modules."""
    if not spec.options.by_segment:
        return None
    a, b = (cell.one(s) for s in sides(spec))
    return [f"{m} · {segment}" for m in module_rows(ctx, spec.statistic, a, b) for segment in SEGMENTS
            if segment != "all"]


@claim_kind("difference", needs=pair_needs, options=DifferenceOptions, rows=difference_rows, test=CHANGE_WORDS,
            describe="relative change of the per-sample mean over the layers")
def difference(ctx: Context, spec, on: Where, row: str) -> dict | None:
    module, layers = module_and_layers(row, spec)
    a, b = (on.cell.one(s) for s in sides(spec))
    units = ctx.units(a, b, module, spec.statistic, spec.paired)
    if units is None:
        return None
    x, y = layer_mean(units.a, layers, units.columns), layer_mean(units.b, layers, units.columns)
    if len(x) < 2 or len(y) < 2:
        return None
    effect, draws = relative_change_draws(x, y, units.paired, ctx)
    lo, hi = interval(draws)
    positive = bool((x > 0).all() and (y > 0).all())
    if spec.direction != "equivalent":
        test = mean_test(x, y, units.paired, log_ratio_or_difference(positive), ctx.arrangements).row()
    elif positive:
        test = equivalence_test(x, y, units.paired, spec.margin, ctx.arrangements).row()
    else:
        test = {"p": equivalence_p(draws, effect, spec.margin), "test": "two one-sided tests on the bootstrap draws",
                "z": np.nan}
    attribute, first, second = spec.first_second()
    scope_words = "all layers" if layers == "all" else (
        f"the {layers} layers" if isinstance(layers, str) else f"layers {', '.join(map(str, layers))}")
    kind = spec.options.effect_kind or (f"relative change of the mean {spec.statistic.replace('_', ' ')} over "
                                        f"{scope_words}, {first} vs {second}")
    out = {"effect": effect, "ci_low": float(lo), "ci_high": float(hi), "effect_kind": kind,
           "n": min(len(x), len(y)), "paired": units.paired, **test}
    return with_confounds(ctx, spec, out, units, (a, b), x, y, summed=spec.statistic == "nuclear_norm")


@claim_kind("mad_change", needs=pair_needs, options=MadOptions,
            describe="relative change of the MAD of the mean curve over the layers (by default the MAD over the "
                     "curve's mean: its shape, not its level)")
def mad_change(ctx: Context, spec, on: Where, module: str) -> dict | None:
    """The ratio of the two mean curves' flatness, minus 1. The test exchanges each side's rows divided by that
    side's mean level (the relative MAD is blind to it, so the statistic is unchanged): exchanging rows of a curve
    20x higher would widen the null by the levels' difference, not the flatness's spread. The CI is the log ratio
    ± 1.96 times the spread of its randomization distribution (which matches its sampling spread): a bootstrap of a
    MAD is too wide, the rows a resample repeats adding layer noise that the MAD turns into flatness."""
    a, b = (on.cell.one(s) for s in sides(spec))
    units = ctx.units(a, b, module, spec.statistic)
    if units is None or min(len(units.a), len(units.b)) < 2:
        return None
    relative = spec.options.scale == "relative"
    flatness = relative_mad if relative else mad
    ratio = lambda ca, cb: flatness(scope(cb, spec.layers), axis=-1) / flatness(scope(ca, spec.layers), axis=-1)
    va, vb = units.a, units.b
    point = float(ratio(va.mean(0)[None], vb.mean(0)[None])[0])
    if relative:
        va, vb = (v / scope(v, spec.layers).mean() for v in (va, vb))
    test = mean_test(va, vb, units.paired, lambda ca, cb: np.log(ratio(ca, cb)), ctx.arrangements)
    half = 1.959964 * test.spread
    layers = f"{spec.layers} layers" if isinstance(spec.layers, str) else "layers " + ", ".join(map(str, spec.layers))
    words = "MAD / mean of the curve" if relative else "MAD"
    row = {"effect": point - 1, "ci_low": float(np.expm1(np.log(point) - half)),
           "ci_high": float(np.expm1(np.log(point) + half)), "effect_kind": f"relative change of {words} ({layers})",
           "n": min(len(va), len(vb)), "paired": units.paired, **test.row()}
    return with_confounds(ctx, spec, row, units, (a, b), adjust=False)


def largest_rows(ctx: Context, spec, cell) -> list[str]:
    target = cell.one(sides(spec)[1])
    return [m for (g, m) in ctx.of(spec.statistic) if g == target]


@claim_kind("largest", needs=first_needs, options=Wording, rows=largest_rows, compare="one value",
            describe="relative difference to the largest other condition")
def largest(ctx: Context, spec, on: Where, module: str) -> dict | None:
    """The condition's mean statistic against the largest of every other condition's in the run at the same token
    budget (a ``#first=N`` condition against the others cut to the same N response tokens, the rest against the
    rest)."""
    matrices = ctx.of(spec.statistic)
    target = on.cell.one(sides(spec)[1])
    mine = per_sample_mean(ctx, spec.statistic, target, module)
    budget = ctx.attributes.get(target, {}).get("first")
    others = {g: m.mean(axis=1) for (g, mod), m in matrices.items() if mod == module and g != target and len(m)
              and g not in ctx.pooled and ctx.attributes.get(g, {}).get("first") == budget}
    if mine is None or not others:
        return None
    best = max(others, key=lambda g: others[g].mean())
    units = ctx.units(best, target, module, spec.statistic, paired="no")
    x, y = units.a.mean(axis=1), units.b.mean(axis=1)
    if len(x) < 2 or len(y) < 2:
        return None
    effect, draws = relative_change_draws(x, y, False, ctx)
    lo, hi = interval(draws)
    test = mean_test(x, y, False, log_ratio_or_difference(bool((x > 0).all() and (y > 0).all())), ctx.arrangements)
    kind = spec.options.effect_kind or (f"relative difference of the mean {spec.statistic.replace('_', ' ')}, "
                                        f"{spec.first_second()[1]} vs the largest other")
    at = f", each response's first {budget} tokens" if budget else ""
    row = {"effect": effect, "ci_low": float(lo), "ci_high": float(hi), "a": best, "b": target,
           "effect_kind": f"{kind} ({best}{at}; of {len(others)} others)", "n": min(len(x), len(y)), "paired": False,
           **test.row()}
    return with_confounds(ctx, spec, row, units, (best, target), x, y, summed=spec.statistic == "nuclear_norm")


@claim_kind("auroc_difference", needs=pair_needs, options=AurocOptions,
            test="sign-flip of the two statistics' ranks sample by sample (a paired permutation test of two AUROCs)",
            compare="two values, options.statistics", describe="AUROC of one statistic minus that of another")
def auroc_difference(ctx: Context, spec, on: Where, module: str) -> dict | None:
    """AUROC of the first statistic minus that of the second (each in its claimed direction): CI from the same
    stratified bootstrap resamples for both, p from swapping the two statistics' ranks sample by sample."""
    a, b = (on.cell.one(s) for s in sides(spec))
    values = {}
    for metric, sign in spec.options.statistics:
        parts = [per_sample_mean(ctx, metric, g, module) for g in (a, b)]
        if any(p is None for p in parts):
            return None
        values[metric] = parts, float(sign)
    (first_metric, _), (second_metric, _) = spec.options.statistics
    (low_e, high_e), _ = values[first_metric]
    shared = [low_e.index.intersection(values[second_metric][0][0].index),
              high_e.index.intersection(values[second_metric][0][1].index)]
    if min(map(len, shared)) < 2:
        return None
    labels = np.r_[np.zeros(len(shared[0])), np.ones(len(shared[1]))].astype(int)
    scores = {m: sign * np.r_[low.loc[shared[0]].to_numpy(), high.loc[shared[1]].to_numpy()]
              for m, ((low, high), sign) in values.items()}
    index = bootstrap_indices(labels, ctx.n_boot, ctx.rng)
    draws = auroc_rows(labels[index], scores[first_metric][index]) - auroc_rows(labels[index],
                                                                                scores[second_metric][index])
    a_1, a_2 = auroc(labels, scores[first_metric]), auroc(labels, scores[second_metric])
    attribute, first, second = spec.first_second()
    row = summary(a_1 - a_2, draws, f"AUROC {first_metric.replace('_', ' ')} {a_1:.2f} minus "
                  f"{second_metric.replace('_', ' ')} {a_2:.2f}, {first} vs {second}",
                  int(min(len(shared[0]), len(shared[1]))))
    test = paired_rank_test(labels, scores[first_metric], scores[second_metric], ctx.arrangements)
    row = {**row, "paired": True, **test.row()}
    units = ctx.units(a, b, module, first_metric, paired="no")
    return with_confounds(ctx, spec, row, units, (a, b), adjust=False) | {
        "rests_on": "raw effect (both statistics of the same samples)"}

