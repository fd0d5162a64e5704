"""Claim kinds that hold a pair against a reference pair of other cells, as a control for length (the first paper's
H7): does slow thinking move a statistic more than a longer answer does (``thinking_vs_length``), or the gap to
irrelevant responses (``separation_vs_length``)?"""

from __future__ import annotations

import numpy as np

from layergrad.analysis.claims.context import Cell, Context, Where
from layergrad.analysis.claims.kinds.relative import gap_gain
from layergrad.analysis.claims.kinds.shared import (ReferenceOptions, SeparationOptions, log_ratio, pair_needs,
                                                    partner_needs, sides)
from layergrad.analysis.claims.testing import summary
from layergrad.studies.registry import claim_kind


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
            compare="two values, options.reference",
            describe="gap gain of a reference pair minus gap gain of this pair")
def separation_vs_length(ctx: Context, spec, on: Where, module: str) -> dict | None:
    """The gain in the gap to the partner (rd_difference's: per prompt where the conditions share prompts) of the
    reference pairs, averaged over their cells, minus this pair's; each cell resampled on its own."""
    cell, reference = on.cell, on.reference
    second, first = sides(spec)
    this = gap_gain(ctx, cell, spec.options.within, second, first, module, spec)
    within = spec.options.reference["within"]
    refs = [gap_gain(ctx, c, within, s, f, module, spec) for c, s, f in reference_pairs(spec, reference)]
    refs = [r for r in refs if r is not None]
    if this is None or not refs:
        return None
    g_ref, d_ref = np.mean([r[0] for r in refs]), np.mean([r[1] for r in refs], axis=0)
    kind = (f"gap gain {spec.options.reference_words} {g_ref:+.3f} (mean of {len(refs)} tasks) minus "
            f"{spec.options.words} {this[0]:+.3f}")
    n = len(ctx.of(spec.statistic)[(cell.one(second), module)])
    return summary(g_ref - this[0], d_ref - this[1], kind, n)
