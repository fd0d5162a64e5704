"""The built-in claim kinds: the vocabulary a study's claims are built from, each one decorated function.

A kind is registered with ``@claim_kind(name, needs=..., options=<dataclass>, ...)`` (studies/registry.py):
which conditions it needs (selectors of attributes, for the 'n/a: needs ...' rows), the options a claim of
it may give (checked when a study is read), which rows it has (modules, or its own labels) and its
statistic for one row, ``(ctx, spec, on, row)`` -> effect, 95% bootstrap CI, p, the effect's wording and
n (``on``: the cell, the reference cells and, between runs, the second run's cell). Every statistic draws
from the context's generator in table order, so a table is reproducible from its seed.

- ``difference``: relative change of the per-sample mean of a statistic over a layer scope, first vs
  second; an equivalence claim: two one-sided randomization tests against the relative margin;
- ``mad_change``: relative change of the MAD of the mean curve over the scope;
- ``rd_difference``: RD(first, its partner) minus RD(second, its partner), the partners chosen by
  ``options.within`` (e.g. correct vs irrelevant responses) — a difference of differences;
- ``thinking_vs_length`` / ``separation_vs_length``: |log-ratio| (of the early-layer mean or of the
  MAD) / RD gain of a reference pair in the run's reference cells (``options.reference``) against the
  same of this pair;
- ``auroc_difference``: AUROC of one statistic minus that of another for separating the two, on the
  same stratified resamples (``options.statistics``);
- ``largest``: a condition's mean against the largest of every other condition in the run;
- ``near_zero``: the mean cosine within ±margin (two one-sided tests), a row per cosine the run has;
- between two runs: ``gap_between_runs`` (|log-ratio| of a pair, second run minus first),
  ``rd_between_runs`` (RD of a pair), ``pattern_agreement`` (Spearman ρ of the curves over relative depth).

p-values come from one family of tests (randomization.py): a sign-flip test on shared prompts, else a label
permutation, of the kind's own statistic, with the design's exact floor; the kinds that compare contrasts of
different cells or runs (no exchange of rows is a null for them) use the bootstrap with the same floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as st

from layergrad.analysis.claims.context import Cell, Context, Where
from layergrad.analysis.claims.randomization import (CHANGE_WORDS, ENOUGH_OVERLAP, equivalence_test, length_adjusted,
                                                     log_ratio_or_difference, mean_test, one_sample_equivalence,
                                                     paired_rank_test)
from layergrad.analysis.claims.testing import equivalence_p, summary
from layergrad.analysis.curves import (SEGMENTS, interval, mad, net_relative_difference, relative_difference,
                                       relative_mad, segment_bounds)
from layergrad.analysis.length import length_overlap
from layergrad.analysis.separability import auroc, auroc_rows, bootstrap_indices
from layergrad.errors import InputError
from layergrad.studies.registry import ClaimOptions, claim_kind

DEPTH_POINTS = 20  # relative-depth grid on which two models' curves are compared (pattern_agreement)
RUN_PAIRINGS = ("in order", "base vs instruct")  # how a between-runs claim picks its two runs (options.runs)


# ----------------------------------------------------------------------------- the kinds' options

@dataclass(frozen=True, kw_only=True)
class Wording(ClaimOptions):
    effect_kind: str = ""  # the effect's words in the table (default: written from the claim's parameters)


@dataclass(frozen=True, kw_only=True)
class DifferenceOptions(Wording):
    by_segment: bool = False  # a row (and verdict) per module and early / middle / late layers, not one over the
    # claim's layers


@dataclass(frozen=True, kw_only=True)
class MadOptions(ClaimOptions):
    scale: str = "relative"  # relative: the MAD over the curve's mean (its shape; a curve only scaled has the same);
    # raw: the MAD in the statistic's units (moves with the curve's level as much as with its shape)

    def __post_init__(self):
        one_of("scale", self.scale, ("relative", "raw"))


@dataclass(frozen=True, kw_only=True)
class RdChoice(ClaimOptions):
    """The RD a kind compares, for every kind that reads one (put first among the bases)."""

    rd: str = "net"  # net: |mean_l (partner - own) / |own|| (noise averages out over layers); paper: mean_l |.|

    def __post_init__(self):
        one_of("rd", self.rd, tuple(RD))
        getattr(super(), "__post_init__", lambda: None)()

    @property
    def rd_function(self):
        return RD[self.rd]

    @property
    def rd_words(self) -> str:
        return "net RD" if self.rd == "net" else "RD"


@dataclass(frozen=True, kw_only=True)
class WithinOptions(RdChoice):
    within: dict  # {attribute: [own value, partner value]}: each side's partner (e.g. correct vs irrelevant)
    names: list | None = None  # the two sides' words (default: the compared values)


@dataclass(frozen=True, kw_only=True)
class ReferenceOptions(ClaimOptions):
    reference: dict  # {compare: {attribute: [first, second]}, where: {...}}: the pair this one is held against
    reference_words: str = "reference"
    words: str = "this pair"
    reference_needs: str = "a reference cell"  # the words of an n/a row when no cell has the reference pair
    measure: str = "early"  # early (the early-layer mean) | mad (the MAD of the mean curve over its mean)
    per_log_length: bool = True  # each pair's log-ratio per unit of its log response-length ratio (an elasticity:
    # a statistic that only follows length as a power of it moves the same per unit in both pairs)

    def __post_init__(self):
        one_of("measure", self.measure, ("early", "mad"))


@dataclass(frozen=True, kw_only=True)
class SeparationOptions(RdChoice, ReferenceOptions):
    within: dict  # as in rd_difference, for this pair and (``reference.within``) the reference pair


@dataclass(frozen=True, kw_only=True)
class AurocOptions(ClaimOptions):
    statistics: list  # [[first statistic, sign], [second statistic, sign]]: each in its claimed direction


@dataclass(frozen=True, kw_only=True)
class CosineOptions(ClaimOptions):
    label_by: list = field(default_factory=list)  # the attributes that name a condition in the row labels


@dataclass(frozen=True, kw_only=True)
class BetweenRunsOptions(ClaimOptions):
    words: str = "of the pair"
    first_run: str = "first"
    second_run: str = "second"
    runs: str = "in order"  # which two runs: 'in order' (as given) | 'base vs instruct' (by their chat template)

    def __post_init__(self):
        one_of("runs", self.runs, RUN_PAIRINGS)


def one_of(key: str, value, choices: tuple) -> None:
    if value not in choices:
        raise InputError(f"options.{key} is one of {', '.join(choices)}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class RdBetweenRunsOptions(RdChoice, BetweenRunsOptions):
    within: dict
    words: str = ""


@dataclass(frozen=True, kw_only=True)
class PatternOptions(BetweenRunsOptions):
    effect_kind: str = "Spearman ρ of the two runs' mean curves over relative depth"


# ----------------------------------------------------------------------------- selectors

def sides(spec) -> list[dict]:
    """[second, first] selectors of ``compare`` (a = the reference, b = the compared), with ``where``."""
    attribute, first, second = spec.first_second()
    return [{**spec.where, attribute: second}, {**spec.where, attribute: first}]


def partners(spec, selector: dict) -> tuple[dict, dict]:
    """(the selector's condition, its partner) by the claim's ``options.within``."""
    return within_pair(spec.options.within, selector)


def within_pair(within: dict, selector: dict) -> tuple[dict, dict]:
    """{attribute: [own value, partner value]} applied to a selector: (its condition, its partner)."""
    (attribute, (own, other)), = within.items()
    return {**selector, attribute: own}, {**selector, attribute: other}


def pair_needs(spec) -> list[dict]:
    return sides(spec)


def partner_needs(spec) -> list[dict]:
    second, first = sides(spec)
    return [partners(spec, second)[0], partners(spec, first)[0], partners(spec, second)[1], partners(spec, first)[1]]


def first_needs(spec) -> list[dict]:
    return [sides(spec)[1]]


# ----------------------------------------------------------------------------- shared pieces

def layer_mean(matrix: pd.DataFrame, layers) -> np.ndarray:
    """Per sample: the mean over a scope ('all', 'early', 'middle', 'late', or layer indices)."""
    values = matrix.to_numpy()
    if isinstance(layers, str):
        lo, hi = segment_bounds(values.shape[1])[layers]
        return values[:, lo:hi].mean(1)
    columns = [list(matrix.columns).index(i) for i in layers if i in matrix.columns]
    return values[:, columns].mean(1) if columns else np.full(len(values), np.nan)


def relative_change_draws(x: np.ndarray, y: np.ndarray, paired: bool, ctx: Context) -> tuple[float, np.ndarray]:
    """mean(y) / mean(x) - 1 and its bootstrap draws (pairs resampled together when paired)."""
    point = y.mean() / x.mean() - 1 if x.mean() else np.nan
    if paired:
        idx = ctx.rng.integers(0, len(x), (ctx.n_boot, len(x)))
        draws = y[idx].mean(1) / x[idx].mean(1) - 1
    else:
        draws = y[ctx.rng.integers(0, len(y), (ctx.n_boot, len(y)))].mean(1) / \
            x[ctx.rng.integers(0, len(x), (ctx.n_boot, len(x)))].mean(1) - 1
    return float(point), draws


def resampled(ctx: Context, a: str, b: str, module: str, fn, metric: str = "nuclear_norm", *, lengths: bool = False):
    """(point, draws, n) of ``fn(mean curve of a, mean curve of b)`` for the data and each bootstrap
    resample (prompt pairs resampled together), or None; ``lengths``: ``fn`` also gets the two sides' mean
    response lengths of the same samples (None without them)."""
    pair = ctx.pair(a, b, module, metric)
    if pair is None:
        return None
    ma, mb, paired = pair
    va, vb = ma.to_numpy(), mb.to_numpy()
    ia, ib = ctx.resample(len(va), len(vb), paired)
    if not lengths:
        return fn(va.mean(0), vb.mean(0)), fn(va[ia].mean(1), vb[ib].mean(1)), min(len(va), len(vb))
    if a not in ctx.lengths or b not in ctx.lengths:
        return None
    la, lb = (ctx.lengths[g].reindex(m.index).to_numpy(dtype=float) for g, m in ((a, ma), (b, mb)))
    return (fn(va.mean(0), vb.mean(0), la.mean(), lb.mean()), fn(va[ia].mean(1), vb[ib].mean(1), la[ia].mean(1),
                                                                 lb[ib].mean(1)), min(len(va), len(vb)))


def scope(curve: np.ndarray, layers) -> np.ndarray:
    if isinstance(layers, str):
        lo, hi = segment_bounds(curve.shape[-1])[layers]
        return curve[..., lo:hi]
    return curve[..., list(layers)]


def early_mean(curve: np.ndarray) -> np.ndarray:
    return scope(curve, "early").mean(-1)


def log_ratio(ctx: Context, a: str, b: str, module: str, measure: str, per_log_length: bool = False):
    """(point, draws) of log(stat(b) / stat(a)); stat = early-layer mean or MAD over the mean curve's mean;
    ``per_log_length``: divided by log(mean length b / mean length a), the change per unit of log length."""
    stat = early_mean if measure == "early" else (lambda c: relative_mad(c, axis=-1))
    if not per_log_length:
        got = resampled(ctx, a, b, module, lambda ca, cb: np.log(stat(cb) / stat(ca)))
    else:
        got = resampled(ctx, a, b, module, lambda ca, cb, la, lb: np.log(stat(cb) / stat(ca)) / log_length(la, lb),
                        lengths=True)
    return got[:2] if got else None


def log_length(la, lb):
    """log(lb / la), NaN where the two lengths are too close for a ratio per unit of it (under 10%)."""
    ratio = np.log(np.asarray(lb, dtype=float) / np.asarray(la, dtype=float))
    return np.where(np.abs(ratio) < np.log(1.1), np.nan, ratio)


RD = {"net": net_relative_difference, "paper": relative_difference}


def rd_of(ctx: Context, correct: str, other: str, module: str, rd=relative_difference):
    """(point, draws) of RD(correct, other) of the mean curves."""
    got = resampled(ctx, correct, other, module, lambda cc, ci: rd(cc, ci, axis=-1))
    return got[:2] if got else None


def rd_gain(ctx: Context, cell: Cell, within: dict, second: dict, first: dict, module: str, rd=relative_difference):
    """(point, draws, [RD second, RD first]) of RD(first, partner) - RD(second, partner)."""
    got = []
    for selector in (second, first):
        own, partner = within_pair(within, selector)
        a, b = cell.one(own), cell.one(partner)
        got.append(rd_of(ctx, a, b, module, rd) if a and b else None)
    if None in got:
        return None
    return got[1][0] - got[0][0], got[1][1] - got[0][1], [got[0][0], got[1][0]]


def per_sample_mean(ctx: Context, metric: str, group: str, module: str) -> pd.Series | None:
    matrix = ctx.of(metric).get((group, module))
    return None if matrix is None or not len(matrix) else matrix.mean(axis=1)


# ----------------------------------------------------------------------------- the kinds

def difference_rows(ctx: Context, spec, cell: Cell) -> list[str] | None:
    """With ``options.by_segment``, '<module> · <segment>' for every module both sides have; else the modules."""
    if not spec.options.by_segment:
        return None
    a, b = (cell.one(s) for s in sides(spec))
    matrices = ctx.of(spec.statistic)
    return [f"{m} · {segment}" for (g, m) in matrices if g == a and (b, m) in matrices
            for segment in SEGMENTS if segment != "all"]


@claim_kind("difference", needs=pair_needs, options=DifferenceOptions, rows=difference_rows, test=CHANGE_WORDS,
            describe="relative change of the per-sample mean over the layers")
def difference(ctx: Context, spec, on: Where, module: str) -> dict | None:
    cell, layers = on.cell, spec.layers
    if spec.options.by_segment:
        module, layers = module.rsplit(" · ", 1)
    a, b = (cell.one(s) for s in sides(spec))
    pair = ctx.pair(a, b, module, spec.statistic, spec.paired)
    if pair is None:
        return None
    ma, mb, paired = pair
    x, y = layer_mean(ma, layers), layer_mean(mb, layers)
    if spec.paired == "no" and (len(x) < 2 or len(y) < 2):
        return None
    effect, draws = relative_change_draws(x, y, paired, ctx)
    lo, hi = interval(draws)
    positive = bool((x > 0).all() and (y > 0).all())
    if spec.direction != "equivalent":
        test = mean_test(x, y, paired, log_ratio_or_difference(positive), ctx.arrangements).row()
    elif positive:
        test = equivalence_test(x, y, paired, spec.margin, ctx.arrangements).row()
    else:
        test = {"p": equivalence_p(draws, effect, spec.margin), "test": "two one-sided tests on the bootstrap draws",
                "z": np.nan}
    attribute, first, second = spec.first_second()
    scope_words = "all layers" if layers == "all" else (
        f"the {layers} layers" if isinstance(layers, str) else f"layers {', '.join(map(str, layers))}")
    kind = spec.options.effect_kind or (f"relative change of the mean {spec.statistic.replace('_', ' ')} over "
                                        f"{scope_words}, {first} vs {second}")
    row = {"effect": effect, "ci_low": float(lo), "ci_high": float(hi), "effect_kind": kind,
           "n": min(len(x), len(y)), "paired": paired, **test}
    return with_length(ctx, row, (a, ma, x), (b, mb, y), paired, spec.direction == "equivalent",
                       spec.statistic == "nuclear_norm")


def with_length(ctx: Context, row: dict, first, second, paired: bool, equivalence: bool = False,
                summed: bool = False) -> dict:
    """The row with the effect adjusted for log response length beside the raw one, and the test its verdict
    rests on: the adjusted one where the two sides' lengths overlap (``ENOUGH_OVERLAP`` of the samples in the
    range both cover), else the raw one, the reason in ``rests_on``. ``first``/``second``: (group, its rows,
    their per-sample values); ``summed``: the values are mean-loss nuclear norms, whose summed-loss change
    (x response tokens: the mean loss divides the gradient by T) is given too."""
    (a, ma, x), (b, mb, y) = first, second
    if a not in ctx.lengths or b not in ctx.lengths:
        return {**row, "rests_on": "raw effect (no response lengths)"}
    lx, ly = (np.maximum(ctx.lengths[g].reindex(m.index).to_numpy(dtype=float), 1) for g, m in ((a, ma), (b, mb)))
    if summed:
        row = {**row, "effect_summed_loss": float(np.mean(y * ly) / np.mean(x * lx) - 1)}
    if not ((x > 0).all() and (y > 0).all()):
        return {**row, "rests_on": "raw effect (values not all positive: no adjustment on the log scale)"}
    adjusted = length_adjusted(x, y, lx, ly, paired, ctx.n_boot, ctx.arrangements)
    if adjusted is None:
        return {**row, "rests_on": "raw effect (the lengths do not vary: no adjustment)"}
    overlap = length_overlap(lx, ly)
    row = {**row, **adjusted.row()}
    if equivalence:
        return {**row, "rests_on": "raw effect (an equivalence claim)"}
    if overlap < ENOUGH_OVERLAP:
        return {**row, "rests_on": f"raw effect (only {overlap:.0%} of the samples lie in the length range both "
                                   "cover: the adjustment would extrapolate)"}
    return {**row, **adjusted.result.row(),
            "rests_on": f"length-adjusted effect ({overlap:.0%} of the samples in the length range both cover)"}


@claim_kind("mad_change", needs=pair_needs, options=MadOptions,
            describe="relative change of the MAD of the mean curve over the layers (by default the MAD over the "
                     "curve's mean: its shape, not its level)")
def mad_change(ctx: Context, spec, on: Where, module: str) -> dict | None:
    a, b = (on.cell.one(s) for s in sides(spec))
    flatness = relative_mad if spec.options.scale == "relative" else mad
    ratio = lambda ca, cb: flatness(scope(cb, spec.layers), axis=-1) / flatness(scope(ca, spec.layers), axis=-1)
    got = resampled(ctx, a, b, module, lambda ca, cb: ratio(ca, cb) - 1, spec.statistic)
    if got is None:
        return None
    ma, mb, paired = ctx.pair(a, b, module, spec.statistic)
    test = mean_test(ma.to_numpy(), mb.to_numpy(), paired, lambda ca, cb: np.log(ratio(ca, cb)), ctx.arrangements)
    layers = f"{spec.layers} layers" if isinstance(spec.layers, str) else "layers " + ", ".join(map(str, spec.layers))
    words = "MAD / mean of the curve" if spec.options.scale == "relative" else "MAD"
    return {**summary(*got[:2], f"relative change of {words} ({layers})", got[2]), "paired": paired, **test.row()}


@claim_kind("rd_difference", needs=partner_needs, options=WithinOptions,
            compare="two values, options.within: two values",
            describe="RD(first, its partner) minus RD(second, its partner)")
def rd_difference(ctx: Context, spec, on: Where, module: str) -> dict | None:
    """Where the four conditions share prompts, the prompts' rows are resampled together (a paired CI) and the
    test swaps each prompt's two sides; else each RD is resampled on its own and the bootstrap gives p."""
    cell, rd, rd_words = on.cell, spec.options.rd_function, spec.options.rd_words
    second, first = sides(spec)
    name_first, name_second = spec.options.names or spec.first_second()[1:]
    words = lambda rd_first, rd_second: f"{rd_words} {name_first} {rd_first:.3f} minus {name_second} {rd_second:.3f}"
    groups = [cell.one(g) for s in (second, first) for g in within_pair(spec.options.within, s)]
    units = ctx.aligned(groups, module, spec.statistic)
    if units is None:  # no exchange of rows is a null for it: the bootstrap
        got = rd_gain(ctx, cell, spec.options.within, second, first, module, rd)
        if got is None:
            return None
        effect, draws, (rd_second, rd_first) = got
        n = min(len(ctx.of(spec.statistic)[(cell.one(s), module)]) for s in (second, first))
        return summary(effect, draws, words(rd_first, rd_second), n, "no prompts shared by all four conditions")
    rows_second, rows_first = (np.hstack([u.to_numpy() for u in units[i:i + 2]]) for i in (0, 2))
    half, n = units[0].shape[1], len(units[0])
    curves_rd = lambda c: rd(c[:, :half], c[:, half:], axis=-1)
    gain = lambda ca, cb: curves_rd(cb) - curves_rd(ca)
    idx = ctx.rng.integers(0, n, (ctx.n_boot, n))
    draws = gain(rows_second[idx].mean(1), rows_first[idx].mean(1))
    rd_second, rd_first = (float(curves_rd(r.mean(0)[None])[0]) for r in (rows_second, rows_first))
    row = summary(rd_first - rd_second, draws, words(rd_first, rd_second), n)
    return {**row, "paired": True, **mean_test(rows_second, rows_first, True, gain, ctx.arrangements).row()}


def reference_pairs(spec, reference: list[Cell]) -> list[tuple[Cell, dict, dict]]:
    """(cell, second, first) of every reference cell that has both of the reference comparison."""
    ref = spec.options.reference
    (attribute, (first, second)), = ref["compare"].items()
    out = []
    for cell in reference:
        s, f = {**ref.get("where", {}), attribute: second}, {**ref.get("where", {}), attribute: first}
        if cell.find(s) and cell.find(f):
            out.append((cell, s, f))
    return out


@claim_kind("thinking_vs_length", needs=pair_needs, options=ReferenceOptions, compare="two values, options.reference",
            describe="|log-ratio| of a reference pair minus |log-ratio| of this pair")
def thinking_vs_length(ctx: Context, spec, on: Where, module: str) -> dict | None:
    cell, reference, measure, per = on.cell, on.reference, spec.options.measure, spec.options.per_log_length
    a, b = (cell.one(s) for s in sides(spec))
    this = log_ratio(ctx, a, b, module, measure, per)
    refs = [log_ratio(ctx, c.one(s), c.one(f), module, measure, per) for c, s, f in reference_pairs(spec, reference)]
    refs = [r for r in refs if r is not None]
    if this is None or not refs:
        return None
    r_ref, d_ref = np.mean([r[0] for r in refs]), np.mean([r[1] for r in refs], axis=0)
    label = "early-layer mean" if measure == "early" else "MAD / mean"
    unit = " per unit of log response length" if per else ""
    kind = (f"|log-ratio| of the {label}{unit}: {spec.options.reference_words} {r_ref:+.2f} (mean of "
            f"{len(refs)} tasks) vs {spec.options.words} {this[0]:+.2f}")
    n = len(ctx.of(spec.statistic)[(a, module)])
    row = summary(abs(r_ref) - abs(this[0]), np.abs(d_ref) - np.abs(this[1]), kind, n)
    return {**row, "rests_on": "effect per unit of log response length" if per else row["rests_on"]}


@claim_kind("separation_vs_length", needs=partner_needs, options=SeparationOptions,
            compare="two values, options.reference", describe="RD gain of a reference pair minus RD gain of this pair")
def separation_vs_length(ctx: Context, spec, on: Where, module: str) -> dict | None:
    cell, reference = on.cell, on.reference
    second, first = sides(spec)
    rd = spec.options.rd_function
    this = rd_gain(ctx, cell, spec.options.within, second, first, module, rd)
    within = spec.options.reference["within"]
    refs = [rd_gain(ctx, c, within, s, f, module, rd) for c, s, f in reference_pairs(spec, reference)
            if all(c.find(within_pair(within, sel)[1]) for sel in (s, f))]
    refs = [r for r in refs if r is not None]
    if this is None or not refs:
        return None
    g_ref, d_ref = np.mean([r[0] for r in refs]), np.mean([r[1] for r in refs], axis=0)
    kind = (f"{spec.options.rd_words} gain {spec.options.reference_words} {g_ref:+.3f} (mean of {len(refs)} tasks) minus "
            f"{spec.options.words} {this[0]:+.3f}")
    n = len(ctx.of(spec.statistic)[(cell.one(second), module)])
    return summary(g_ref - this[0], d_ref - this[1], kind, n)


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
    return {**row, "paired": True, **test.row(), "rests_on": "raw effect (both statistics of the same samples)"}


def largest_rows(ctx: Context, spec, cell: Cell) -> list[str]:
    target = cell.one(sides(spec)[1])
    return [m for (g, m) in ctx.of(spec.statistic) if g == target]


@claim_kind("largest", needs=first_needs, options=Wording, rows=largest_rows, compare="one value",
            describe="relative difference to the largest other condition")
def largest(ctx: Context, spec, on: Where, module: str) -> dict | None:
    """The condition's mean statistic against the largest of every other condition's in the run."""
    matrices = ctx.of(spec.statistic)
    target = on.cell.one(sides(spec)[1])
    mine = per_sample_mean(ctx, spec.statistic, target, module)
    others = {g: m.mean(axis=1) for (g, mod), m in matrices.items() if mod == module and g != target and len(m)
              and g not in ctx.pooled}
    if mine is None or not others:
        return None
    best = max(others, key=lambda g: others[g].mean())
    x, y = others[best].to_numpy(), mine.to_numpy()
    effect, draws = relative_change_draws(x, y, False, ctx)
    lo, hi = interval(draws)
    test = mean_test(x, y, False, log_ratio_or_difference(bool((x > 0).all() and (y > 0).all())),
                        ctx.arrangements)
    kind = spec.options.effect_kind or (f"relative difference of the mean {spec.statistic.replace('_', ' ')}, "
                                        f"{spec.first_second()[1]} vs the largest other")
    row = {"effect": effect, "ci_low": float(lo), "ci_high": float(hi), "a": best, "b": target,
           "effect_kind": f"{kind} ({best})", "n": min(len(x), len(y)), "paired": False, **test.row()}
    return with_length(ctx, row, (best, others[best], x), (target, mine, y), False,
                       summed=spec.statistic == "nuclear_norm")


PAIR_LABELS = {"q_proj": "q×o", "k_proj": "k×v"}


def style_groups(spec, cell: Cell) -> dict[str, str]:
    """{the value that names a condition (the first of ``options.label_by`` it has): group} in the cell."""
    found = {}
    for group in cell.find(spec.where):
        attrs = cell.attributes[group]
        name = next((attrs[k] for k in spec.options.label_by if k in attrs), group)
        found[name] = group
    return found


def cosine_rows(ctx: Context, spec, cell: Cell) -> list[str]:
    """A row per cosine the run has: '<pair or kind> · <condition>'."""
    rows = []
    for style, group in style_groups(spec, cell).items():
        for metric, name in (("cosine_pair", lambda m: PAIR_LABELS.get(m, m)), ("cosine_next", lambda m: f"{m} × next layer")):
            rows += [f"{name(m)} · {style}" for (g, m) in ctx.of(metric) if g == group]
    return rows


@claim_kind("near_zero", needs=lambda spec: [], options=CosineOptions, rows=cosine_rows,
            test="two one-sided sign-flip tests (equivalence)", compare="nothing",
            describe="equivalence of the mean cosine with 0")
def near_zero(ctx: Context, spec, on: Where, row: str) -> dict | None:
    """The mean cosine (per sample over layers, then over samples) within ±margin, two one-sided sign-flip tests."""
    cell = on.cell
    label, _, style = row.rpartition(" · ")
    if label.endswith(" × next layer"):
        metric, module = "cosine_next", label[:-len(" × next layer")]
    else:
        metric, module = "cosine_pair", {v: k for k, v in PAIR_LABELS.items()}.get(label, label)
    group = style_groups(spec, cell)[style]
    values = per_sample_mean(ctx, metric, group, module)
    if values is None or len(values) < 2:
        return None
    v = values.to_numpy()
    draws = v[ctx.rng.integers(0, len(v), (ctx.n_boot, len(v)))].mean(1)
    lo, hi = interval(draws)
    margin = spec.margin
    test = one_sample_equivalence(v, margin, ctx.arrangements)
    return {"effect": float(v.mean()), "ci_low": float(lo), "ci_high": float(hi), "a": group, "b": group,
            "effect_kind": f"mean {metric.replace('_', ' ')} (equivalence margin ±{margin:g})", "n": len(v),
            "paired": True, **test.row(), "rests_on": "raw effect (one condition)"}


# ----------------------------------------------------------------------------- between two runs

@claim_kind("gap_between_runs", needs=pair_needs, options=BetweenRunsOptions, between_runs=True,
            describe="|log-ratio| of a pair, second run minus first")
def gap_between_runs(ctx: Context, spec, on: Where, module: str) -> dict | None:
    """|log-ratio| of the early-layer mean of a pair, the second run minus the first."""
    first_cell, second_cell = on.cell, on.other
    got = [log_ratio(ctx, c.one(sides(spec)[0]), c.one(sides(spec)[1]), module, "early")
           for c in (first_cell, second_cell)]
    if None in got:
        return None
    (rb, db), (ri, di) = got
    return summary(abs(ri) - abs(rb), np.abs(di) - np.abs(db),
                   f"|log-ratio| {spec.options.words}: {spec.options.second_run} "
                   f"{ri:+.2f}, {spec.options.first_run} {rb:+.2f}",
                   len(ctx.of(spec.statistic)[(first_cell.one(sides(spec)[0]), module)]))


@claim_kind("rd_between_runs", needs=lambda spec: list(partners(spec, sides(spec)[1])), options=RdBetweenRunsOptions,
            between_runs=True, describe="RD of a pair, second run minus first")
def rd_between_runs(ctx: Context, spec, on: Where, module: str) -> dict | None:
    """RD(condition, its partner) of the mean curves, the second run minus the first."""
    first_cell, second_cell = on.cell, on.other
    selector = sides(spec)[1]
    got = []
    for c in (first_cell, second_cell):
        own, partner = partners(spec, selector)
        got.append(rd_of(ctx, c.one(own), c.one(partner), module, spec.options.rd_function))
    if None in got:
        return None
    (pb, db), (pi, di) = got
    return summary(pi - pb, di - db, f"{spec.options.rd_words} {spec.options.words}: {spec.options.second_run} "
                   f"{pi:.3f}, {spec.options.first_run} {pb:.3f}",
                   len(ctx.of(spec.statistic)[(first_cell.one(partners(spec, selector)[0]), module)]))


def relative_depth_curve(matrix: np.ndarray) -> np.ndarray:
    """(..., L) curve -> (..., DEPTH_POINTS) on relative depth 0..1 (linear interpolation)."""
    layers = np.linspace(0, 1, matrix.shape[-1])
    grid = np.linspace(0, 1, DEPTH_POINTS)
    return np.apply_along_axis(lambda c: np.interp(grid, layers, c), -1, matrix)


@claim_kind("pattern_agreement", needs=first_needs, options=PatternOptions, between_runs=True, compare="one value",
            describe="Spearman ρ of two runs' curves over relative depth")
def pattern_agreement(ctx: Context, spec, on: Where, module: str) -> dict | None:
    """Spearman ρ of the two runs' mean curves over relative depth."""
    first_cell, second_cell = on.cell, on.other
    selector = sides(spec)[1]
    ma = ctx.of(spec.statistic).get((first_cell.one(selector), module))
    mb = ctx.of(spec.statistic).get((second_cell.one(selector), module))
    if ma is None or mb is None or len(ma) < 2 or len(mb) < 2:
        return None
    va, vb = ma.to_numpy(), mb.to_numpy()
    ia, ib = ctx.resample(len(va), len(vb), False)
    ca, cb = relative_depth_curve(va[ia].mean(1)), relative_depth_curve(vb[ib].mean(1))
    draws = np.array([st.spearmanr(x, y).statistic for x, y in zip(ca, cb)])
    effect = float(st.spearmanr(relative_depth_curve(va.mean(0)), relative_depth_curve(vb.mean(0))).statistic)
    return summary(effect, draws, spec.options.effect_kind, min(len(va), len(vb)))
