"""Which experts of a MoE model a condition trains, and how hard: per layer and expert, the tokens routed to it
and its share of the gradient.

From the rows of single experts (schema.expert_rows): for each group, layer, expert matrix and expert,

- ``token_share``: the mean over the group's samples of the share of the sample's routed tokens that went to
  this expert (the router's choice; the shares of a layer's experts sum to 1);
- ``load``: the mean over the group's samples of the expert's share of the layer's summed nuclear norm,
  ‖G_e‖* / Σ_e' ‖G_e'‖* (the summary row's nuclear norm): how much of what the sample trains in that layer goes to
  this expert. An expert the sample routed no token to has no gradient, a share of 0;
- ``routed_samples`` (samples that routed it at least one token) and ``nuclear_norm`` (its mean over those
  samples only: an unrouted expert is not a zero gradient, it is no gradient).
"""

from __future__ import annotations

import pandas as pd

from layergrad.analysis.loading import of_samples

COLUMNS = ["group", "layer", "module", "expert", "samples", "routed_samples", "token_share", "load", "nuclear_norm"]


def expert_table(experts: pd.DataFrame | None, ok: pd.DataFrame) -> pd.DataFrame:
    """The table above, from the single experts' rows of the samples computed (``ok``: group, sample_id)."""
    if experts is None or experts.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = of_samples(experts, ok)
    rows = rows.assign(routed_tokens=rows.routed_tokens.astype(float), nuclear=rows.nuclear_norm.fillna(0.0))
    per_layer = ["group", "sample_id", "layer", "module"]
    rows = rows.assign(token_share=rows.routed_tokens / rows.groupby(per_layer).routed_tokens.transform("sum"),
                       load=rows.nuclear / rows.groupby(per_layer).nuclear.transform("sum"))
    table = rows.groupby(["group", "layer", "module", "expert"], sort=False).agg(
        samples=("sample_id", "nunique"), routed_samples=("routed_tokens", lambda v: int((v > 0).sum())),
        token_share=("token_share", "mean"), load=("load", "mean"), nuclear_norm=("nuclear_norm", "mean"))
    return table.reset_index()[COLUMNS]
