"""What the claim kinds share: their options, the selectors of a claim's conditions, a row's module and layers,
and the resampled statistics of mean curves."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from layergrad.analysis.claims.context import ALL, Context
from layergrad.analysis.curves import net_relative_difference, relative_difference, relative_mad, segment_bounds
from layergrad.errors import InputError
from layergrad.studies.registry import ClaimOptions

RUN_PAIRINGS = ("in order", "base vs instruct")  # how a between-runs claim picks its two runs (options.runs)
RD = {"net": net_relative_difference, "paper": relative_difference}


# ----------------------------------------------------------------------------- options

def one_of(key: str, value, choices: tuple) -> None:
    if value not in choices:
        raise InputError(f"options.{key} is one of {', '.join(choices)}, got {value!r}")


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

    rd: str = "net"  # net: the signed gap averaged before its magnitude (noise averages out); paper: mean of |.|

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
    null: str = "shuffled"  # the equivalence margin: shuffled (the range of unrelated samples' cosines) | margin

    def __post_init__(self):
        one_of("null", self.null, ("shuffled", "margin"))


@dataclass(frozen=True, kw_only=True)
class BetweenRunsOptions(ClaimOptions):
    words: str = "of the pair"
    first_run: str = "first"
    second_run: str = "second"
    runs: str = "in order"  # which two runs: 'in order' (as given) | 'base vs instruct' (by their chat template)

    def __post_init__(self):
        one_of("runs", self.runs, RUN_PAIRINGS)


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


# ----------------------------------------------------------------------------- rows, scopes, resampling

def module_and_layers(row: str, spec) -> tuple[str, object]:
    """A row's module and layer scope: '<module> · <segment>' (a kind with a row per segment), else the module at
    the claim's layers."""
    if " · " in row:
        module, segment = row.rsplit(" · ", 1)
        return module, segment
    return row, spec.layers


def layer_mean(matrix, layers, columns=None) -> np.ndarray:
    """Per sample: the mean over a scope ('all', 'early', 'middle', 'late', or layer indices) of a (samples x layers)
    frame, or of an array whose layers are ``columns``."""
    values = np.asarray(matrix)
    if isinstance(layers, str):
        lo, hi = segment_bounds(values.shape[1])[layers]
        return values[:, lo:hi].mean(1)
    labels = list(matrix.columns if isinstance(matrix, pd.DataFrame) else columns)
    chosen = [labels.index(i) for i in layers if i in labels]
    return values[:, chosen].mean(1) if chosen else np.full(len(values), np.nan)


def scope(curve: np.ndarray, layers) -> np.ndarray:
    if isinstance(layers, str):
        lo, hi = segment_bounds(curve.shape[-1])[layers]
        return curve[..., lo:hi]
    return curve[..., list(layers)]


def early_mean(curve: np.ndarray) -> np.ndarray:
    return scope(curve, "early").mean(-1)


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
    response lengths of the same units (None without them)."""
    units = ctx.units(a, b, module, metric)
    if units is None or min(len(units.a), len(units.b)) < 2:
        return None
    va, vb = units.a, units.b
    ia, ib = ctx.resample(len(va), len(vb), units.paired)
    if not lengths:
        return fn(va.mean(0), vb.mean(0)), fn(va[ia].mean(1), vb[ib].mean(1)), min(len(va), len(vb))
    both = units.covariate(ctx.lengths, (a, b))
    if both is None:
        return None
    la, lb = both
    return (fn(va.mean(0), vb.mean(0), la.mean(), lb.mean()), fn(va[ia].mean(1), vb[ib].mean(1), la[ia].mean(1),
                                                                 lb[ib].mean(1)), min(len(va), len(vb)))


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


def per_sample_mean(ctx: Context, metric: str, group: str, module: str) -> pd.Series | None:
    matrix = ctx.of(metric).get((group, module))
    return None if matrix is None or not len(matrix) else matrix.mean(axis=1)


def module_rows(ctx: Context, metric: str, a: str, b: str) -> list[str]:
    """The modules both groups have, the mean over them (``ALL``) last."""
    matrices = ctx.of(metric)
    found = [m for (g, m) in matrices if g == a and (b, m) in matrices and m != ALL]
    return found + ([ALL] if (a, ALL) in matrices and (b, ALL) in matrices else [])
