"""The claim kind on one condition's cosines (the follow-up's F6): do a condition's same-layer (q×o, k×v) and
adjacent-layer gradient cosines stay near zero (``near_zero``)?"""

from __future__ import annotations

import numpy as np

from layergrad.analysis.claims.context import Cell, Context, Where
from layergrad.analysis.claims.kinds.shared import CosineOptions, per_sample_mean
from layergrad.analysis.claims.randomization import one_sample_equivalence
from layergrad.analysis.curves import interval
from layergrad.studies.registry import claim_kind

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
        for metric, name in (("cosine_pair", lambda m: PAIR_LABELS.get(m, m)),
                             ("cosine_next", lambda m: f"{m} × next layer")):
            rows += [f"{name(m)} · {style}" for (g, m) in ctx.of(metric) if g == group]
    return rows


@claim_kind("near_zero", needs=lambda spec: [], options=CosineOptions, rows=cosine_rows,
            test="two one-sided sign-flip tests (equivalence) against the cosines of unrelated samples",
            compare="nothing",
            describe="equivalence of the mean cosine with 0, within what unrelated samples' gradients reach")
def near_zero(ctx: Context, spec, on: Where, row: str) -> dict | None:
    """The mean cosine (per sample over layers, then over samples) within ±margin, two one-sided sign-flip tests.
    The margin (``options.null``): 'shuffled', the 95% range of the same cosine between unrelated samples' gradients
    (each sample with the next of its batch: ``--cosine``'s *_shuffled columns) — near zero means no more aligned
    than chance alignment of these matrices; 'margin', the claim's fixed ``margin`` (also where a run has no shuffled
    pairs)."""
    cell = on.cell
    label, _, style = row.rpartition(" · ")
    if not label or style not in style_groups(spec, cell):
        return None  # the claim's summary row: no one test of it (testing.module_summaries counts the rows)
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
    margin, words = null_margin(ctx, spec, metric, group, module)
    test = one_sample_equivalence(v, margin, ctx.arrangements)
    return {"effect": float(v.mean()), "ci_low": float(lo), "ci_high": float(hi), "a": group, "b": group,
            "effect_kind": f"mean {metric.replace('_', ' ')} ({words})", "n": len(v), "margin": margin,
            "paired": True, **test.row(), "rests_on": "raw effect (one condition)"}


def null_margin(ctx: Context, spec, metric: str, group: str, module: str) -> tuple[float, str]:
    """(the equivalence margin, its words): the 95% range of |cosine| between unrelated samples (their per-sample
    means over the layers), else the claim's fixed margin."""
    shuffled = per_sample_mean(ctx, f"{metric}_shuffled", group, module) if spec.options.null == "shuffled" else None
    if shuffled is None or len(shuffled) < 2:
        why = "" if spec.options.null == "margin" else ", no shuffled pairs in this run"
        return spec.margin, f"fixed equivalence margin ±{spec.margin:g}{why}"
    r = shuffled.to_numpy()
    margin = float(np.max(np.abs(np.percentile(r, [2.5, 97.5]))))
    return margin, f"margin ±{margin:.2g}: 95% of unrelated samples' cosines (each with the next of its batch, " \
                   f"{len(r)} pairs, mean {r.mean():+.2g})"
