"""How far a condition's partner (e.g. its irrelevant responses) moves the statistic, and whether that gap differs
between two conditions (``rd_difference``).

The gap is measured per prompt, on a scale free of the statistic's level: the mean over the layers of log(partner /
own) (the difference where values can be 0 or negative). A prompt's gap of a style whose nuclear norms are 20x
another's is then as large as the other's when the partner moves both by the same share, and a test that swaps
the two styles' gaps prompt by prompt is valid whatever the styles' levels and spreads. The net gap (``rd: net``)
is the mean gap, its magnitude the net RD; two sides are compared in the direction their gaps share (the sign of
their sum, which a swap leaves as it is), so the effect is the gain in magnitude where the gaps agree in sign.
``rd: paper`` takes the mean of |log(partner / own)| over the layers instead (the paper's RD: positive however
alike the curves are, and larger for the noisier side). Where the conditions share no prompts, the RD of the mean
curves is resampled instead (a bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layergrad.analysis.claims.context import Context, Where
from layergrad.analysis.claims.kinds.confounds import with_confounds
from layergrad.analysis.claims.kinds.shared import WithinOptions, partner_needs, resampled, scope, sides, within_pair
from layergrad.analysis.claims.randomization import mean_test
from layergrad.analysis.claims.testing import summary
from layergrad.studies.registry import claim_kind


@dataclass(frozen=True)
class Gaps:
    """Per prompt, the gap of each of two conditions (``second``, ``first``) to its partner; ``paired``: the same
    prompts in the same order."""

    second: np.ndarray
    first: np.ndarray
    paired: bool
    mode: str

    def means(self) -> tuple[float, float]:
        return float(self.second.mean()), float(self.first.mean())

    @property
    def orientation(self) -> float:
        """+1 / -1: the sign both gaps share on the whole (the sign of their sum; +1 for the paper's RD)."""
        return 1.0 if self.mode == "paper" else (float(np.sign(sum(self.means()))) or 1.0)

    def effect(self) -> float:
        second, first = self.means()
        return self.orientation * (first - second)

    def draws(self, ctx: Context) -> np.ndarray:
        i2, i1 = ctx.resample(len(self.second), len(self.first), self.paired)
        return self.orientation * (self.first[i1].mean(1) - self.second[i2].mean(1))

    def test(self, ctx: Context):
        return mean_test(self.second[:, None], self.first[:, None], self.paired,
                         lambda a, b: self.orientation * (b[:, 0] - a[:, 0]), ctx.arrangements)


def per_prompt_gap(own: np.ndarray, partner: np.ndarray, layers, mode: str) -> np.ndarray:
    """Per row, the mean over the scope's layers of log(partner / own) (|.| for the paper's RD)."""
    own, partner = scope(own, layers), scope(partner, layers)
    gap = np.log(partner / own) if (own > 0).all() and (partner > 0).all() else partner - own
    return np.abs(gap).mean(-1) if mode == "paper" else gap.mean(-1)


def pair_gap(ctx: Context, own: str, partner: str, module: str, metric: str, layers, mode: str) -> np.ndarray | None:
    """The per-prompt gaps of one condition to its partner on the prompts both have, or None."""
    rows = ctx.aligned([own, partner], module, metric)
    if rows is None:
        return None
    return per_prompt_gap(rows[0].to_numpy(), rows[1].to_numpy(), layers, mode)


def prompt_gaps(ctx: Context, cell, within: dict, second: dict, first: dict, module: str, metric: str, layers,
                mode: str) -> Gaps | None:
    """The two sides' per-prompt gaps: paired where all four conditions share prompts, else each side on its own
    prompts; None where a side's condition and partner share none."""
    groups = [cell.one(g) for s in (second, first) for g in within_pair(within, s)]
    if None in groups:
        return None
    rows = ctx.aligned(groups, module, metric)
    if rows is not None:
        values = [r.to_numpy() for r in rows]
        return Gaps(per_prompt_gap(values[0], values[1], layers, mode),
                    per_prompt_gap(values[2], values[3], layers, mode), True, mode)
    parts = [pair_gap(ctx, groups[i], groups[i + 1], module, metric, layers, mode) for i in (0, 2)]
    if any(p is None or len(p) < 2 for p in parts):
        return None
    return Gaps(parts[0], parts[1], False, mode)


def rd_of(ctx: Context, correct: str, other: str, module: str, rd, metric: str = "nuclear_norm"):
    """(point, draws) of RD(correct, other) of the mean curves (conditions that share no prompts)."""
    got = resampled(ctx, correct, other, module, lambda cc, ci: rd(cc, ci, axis=-1), metric)
    return got[:2] if got else None


def gap_gain(ctx: Context, cell, within: dict, second: dict, first: dict, module: str, spec):
    """(point, draws, (second's, first's)) of the first side's gap minus the second's: per-prompt gaps where
    the conditions share prompts, else the RD of the mean curves; None where a condition is missing."""
    gaps = prompt_gaps(ctx, cell, within, second, first, module, spec.statistic, spec.layers, spec.options.rd)
    if gaps is not None:
        return gaps.effect(), gaps.draws(ctx), gaps.means()
    got = []
    for selector in (second, first):
        own, partner = (cell.one(s) for s in within_pair(within, selector))
        got.append(rd_of(ctx, own, partner, module, spec.options.rd_function, spec.statistic) if own and partner
                   else None)
    if None in got:
        return None
    return got[1][0] - got[0][0], got[1][1] - got[0][1], (got[0][0], got[1][0])


def gap_words(spec, values: tuple[float, float], per_prompt: bool) -> str:
    name_first, name_second = spec.options.names or spec.first_second()[1:]
    (_, (own, partner)), = spec.options.within.items()
    second, first = values
    if not per_prompt:
        return f"{spec.options.rd_words} of the mean curves {name_first} {first:.3f} minus {name_second} {second:.3f}"
    what = "mean |log(partner / own)|" if spec.options.rd == "paper" else "net gap log(partner / own)"
    return (f"{what.replace('partner', partner).replace('own', own)} per prompt, mean over layers: {name_first} "
            f"{first:+.3f}, {name_second} {second:+.3f}" + (", compared in their common direction"
                                                           if spec.options.rd == "net" else ""))


@claim_kind("rd_difference", needs=partner_needs, options=WithinOptions,
            compare="two values, options.within: two values",
            test="sign-flip of the per-prompt gaps (shared prompts), studentized label permutation otherwise",
            describe="the gap of the first to its partner minus the gap of the second to its")
def rd_difference(ctx: Context, spec, on: Where, module: str) -> dict | None:
    """Where each side's condition and partner share prompts, the per-prompt gaps (resampled and swapped prompt by
    prompt where all four share them); else the RD of the mean curves, bootstrapped."""
    second, first = sides(spec)
    own_second, own_first = (on.cell.one(within_pair(spec.options.within, s)[0]) for s in (second, first))
    gaps = prompt_gaps(ctx, on.cell, spec.options.within, second, first, module, spec.statistic, spec.layers,
                       spec.options.rd)
    if gaps is None:
        got = gap_gain(ctx, on.cell, spec.options.within, second, first, module, spec)
        if got is None:
            return None
        n = min(len(ctx.of(spec.statistic)[(g, module)]) for g in (own_second, own_first))
        row = summary(got[0], got[1], gap_words(spec, got[2], False), n, "no prompts shared within the pairs")
    else:
        n = min(len(gaps.second), len(gaps.first))
        row = {**summary(gaps.effect(), gaps.draws(ctx), gap_words(spec, gaps.means(), True), n),
               "paired": gaps.paired, **gaps.test(ctx).row()}
    units = ctx.units(own_second, own_first, module, spec.statistic)
    return row if units is None else with_confounds(ctx, spec, row, units, (own_second, own_first), adjust=False)
