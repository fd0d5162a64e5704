"""A two-sided row's confounds (``spec.confounds``: response length by default, loss where a claim names it): whether
the design can separate the claim's contrast from them, the effect at equal confounds where it can, and what the
verdict rests on."""

from __future__ import annotations

import numpy as np

from layergrad.analysis.claims.adjustment import adjusted_effect, paired_support, unpaired_support
from layergrad.analysis.claims.context import Context, Units
from layergrad.analysis.claims.testing import ADJUSTED, CURVES


def supports(ctx: Context, spec, units: Units, groups: tuple[str, str]) -> tuple[list, list]:
    """(the supports of the claim's confounds, the per-unit values of each: [(a's, b's)]); a confound the run has
    no values of is left out."""
    found, values = [], []
    for name in spec.confounds:
        both = units.covariate(ctx.covariates.get(name, {}), groups)
        if both is None:
            continue
        ca, cb = both
        if not len(ca) or not len(cb):
            continue
        found.append(paired_support(name, np.log(cb) - np.log(ca), groups) if units.paired
                     else unpaired_support(name, ca, cb, groups))
        values.append(both)
    return found, values


def with_confounds(ctx: Context, spec, row: dict, units: Units, groups: tuple[str, str], x=None, y=None, *,
                   adjust: bool = True, summed: bool = False) -> dict:
    """The row with its confound columns: ``confounded_by`` (why the design cannot separate the contrast from a
    confound, else ''), the effect at equal confounds with its CI, test and curved-fit sensitivity (``adjust``:
    per-unit values ``x``, ``y`` of the two sides; where identified the verdict rests on it), the ratio of
    geometric means, and (``summed``: mean-loss nuclear norms) the summed-loss effect."""
    found, values = supports(ctx, spec, units, groups)
    row = {**row, "confounded_by": "; ".join(s.words for s in found if not s.identified)}
    if summed and "length" in [s.confound for s in found]:
        la, lb = values[[s.confound for s in found].index("length")]
        row["effect_summed_loss"] = float(np.mean(y * lb) / np.mean(x * la) - 1)
    if not found:
        why = (f"the run has no per-sample {' or '.join(spec.confounds)}" if spec.confounds
               else "the claim names no confound")
        return {**row, "rests_on": f"raw effect ({why})"}
    words = "; ".join(s.words for s in found)
    if not adjust:
        return {**row, "rests_on": CURVES if row["confounded_by"] else f"{CURVES}; {words}"}
    positive = bool((x > 0).all() and (y > 0).all())
    if positive:
        row["effect_geometric"] = float(np.exp(np.log(y).mean() - np.log(x).mean()) - 1)
    else:
        return {**row, "rests_on": "raw effect (values not all positive: no adjustment on the log scale)"}
    adjusted = adjusted_effect(x, y, np.column_stack([v[0] for v in values]), np.column_stack([v[1] for v in values]),
                               units.paired, ctx.n_boot, ctx.arrangements)
    if adjusted is None:
        return {**row, "rests_on": f"raw effect (the {' or '.join(s.confound for s in found)} does not vary: no "
                                   "adjustment)"}
    row = {**row, **adjusted.row()}
    if row["confounded_by"]:
        return {**row, "rests_on": "raw effect (the adjustment would extrapolate)"}
    if spec.direction == "equivalent":
        return {**row, "rests_on": f"raw effect (an equivalence claim; {words})"}
    at = " and ".join(s.confound for s in found)
    return {**row, **adjusted.result.row(), "rests_on": f"{ADJUSTED} effect at equal {at} ({words})"}
