"""Metrics derived per row from a statistic and the sample's loss or length (not statistics of the
spectrum alone): the authors' loss-normalised nuclear norm and the summed-loss nuclear norm."""

from __future__ import annotations

import numpy as np
import pandas as pd

DERIVED_METRICS = {
    "nuclear_norm_per_loss": "nuclear norm / loss: the authors' S_sum_regularized",
    "nuclear_norm_summed": "nuclear norm x response tokens: the nuclear norm of the gradient of the summed "
                           "(not mean) token loss, ‖∂(Σ_t ℓ_t)/∂W‖* = |R| · ‖∂L/∂W‖*",
}


def with_derived_metrics(stats: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Add the loss-normalised and summed-loss nuclear norms (DERIVED_METRICS) per row."""
    info = samples.set_index(["condition", "sample_id"])[["loss", "n_response_tokens"]]
    info = info[~info.index.duplicated()]
    joined = info.reindex(pd.MultiIndex.from_arrays([stats.condition, stats.sample_id]))
    loss = joined.loss.to_numpy(dtype=float)
    tokens = joined.n_response_tokens.to_numpy(dtype=float)
    nuclear = stats.nuclear_norm.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_loss = np.where(loss > 0, nuclear / loss, np.nan)
    summed = np.where(tokens > 0, nuclear * tokens, np.nan)
    return stats.assign(nuclear_norm_per_loss=per_loss, nuclear_norm_summed=summed)
