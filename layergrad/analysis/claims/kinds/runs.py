"""Claim kinds between two runs (e.g. a base and an instruct model on the same data): the gap of a pair
(``gap_between_runs``), a condition's gap to its partner (``rd_between_runs``), and whether the two runs' curves
agree in shape (``pattern_agreement``). No exchange of rows is a null for them: each run is resampled on its own."""

from __future__ import annotations

import numpy as np
from scipy import stats as st

from layergrad.analysis.claims.context import Context, Where
from layergrad.analysis.claims.kinds.relative import pair_gap, rd_of
from layergrad.analysis.claims.kinds.shared import (BetweenRunsOptions, PatternOptions, RdBetweenRunsOptions,
                                                    first_needs, log_ratio, pair_needs, partners, sides)
from layergrad.analysis.claims.testing import summary
from layergrad.studies.registry import claim_kind

DEPTH_POINTS = 20  # relative-depth grid on which two models' curves are compared (pattern_agreement)


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


def gap_magnitude(ctx: Context, spec, own: str, partner: str, module: str):
    """(point, draws) of a condition's net RD to its partner: the magnitude of the mean per-prompt gap where they
    share prompts (the mean of |gap| for the paper's RD), else the RD of the mean curves."""
    gaps = pair_gap(ctx, own, partner, module, spec.statistic, spec.layers, spec.options.rd)
    if gaps is None:
        return rd_of(ctx, own, partner, module, spec.options.rd_function, spec.statistic)
    draws = gaps[ctx.rng.integers(0, len(gaps), (ctx.n_boot, len(gaps)))].mean(1)
    return abs(float(gaps.mean())), np.abs(draws)


@claim_kind("rd_between_runs", needs=lambda spec: list(partners(spec, sides(spec)[1])), options=RdBetweenRunsOptions,
            between_runs=True, describe="RD of a pair, second run minus first")
def rd_between_runs(ctx: Context, spec, on: Where, module: str) -> dict | None:
    """A condition's net RD to its partner (per prompt where they share prompts), the second run minus the first."""
    selector = sides(spec)[1]
    got = []
    for c in (on.cell, on.other):
        own, partner = (c.one(s) for s in partners(spec, selector))
        got.append(gap_magnitude(ctx, spec, own, partner, module) if own and partner else None)
    if None in got:
        return None
    (pb, db), (pi, di) = got
    return summary(pi - pb, di - db, f"{spec.options.rd_words} {spec.options.words}: {spec.options.second_run} "
                   f"{pi:.3f}, {spec.options.first_run} {pb:.3f}",
                   len(ctx.of(spec.statistic)[(on.cell.one(partners(spec, selector)[0]), module)]))


def relative_depth_curve(matrix: np.ndarray) -> np.ndarray:
    """(..., L) curve -> (..., DEPTH_POINTS) on relative depth 0..1 (linear interpolation)."""
    layers = np.linspace(0, 1, matrix.shape[-1])
    grid = np.linspace(0, 1, DEPTH_POINTS)
    return np.apply_along_axis(lambda c: np.interp(grid, layers, c), -1, matrix)


@claim_kind("pattern_agreement", needs=first_needs, options=PatternOptions, between_runs=True, compare="one value",
            describe="Spearman ρ of two runs' curves over relative depth")
def pattern_agreement(ctx: Context, spec, on: Where, module: str) -> dict | None:
    """Spearman ρ of the two runs' mean curves over relative depth."""
    selector = sides(spec)[1]
    ma = ctx.of(spec.statistic).get((on.cell.one(selector), module))
    mb = ctx.of(spec.statistic).get((on.other.one(selector), module))
    if ma is None or mb is None or len(ma) < 2 or len(mb) < 2:
        return None
    va, vb = ma.to_numpy(), mb.to_numpy()
    ia, ib = ctx.resample(len(va), len(vb), False)
    ca, cb = relative_depth_curve(va[ia].mean(1)), relative_depth_curve(vb[ib].mean(1))
    draws = np.array([st.spearmanr(x, y).statistic for x, y in zip(ca, cb)])
    effect = float(st.spearmanr(relative_depth_curve(va.mean(0)), relative_depth_curve(vb.mean(0))).statistic)
    return summary(effect, draws, spec.options.effect_kind, min(len(va), len(vb)))
