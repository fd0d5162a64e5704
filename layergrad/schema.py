"""The output schema of a run: the columns of stats.parquet and samples.parquet, their order, how rows
are sorted, and how the records' own fields (``meta.*``) are typed. No torch here: the store, export and
import, and analysis read it without loading a model's libraries.
"""

from __future__ import annotations

import math

import pandas as pd

from layergrad.data.samples import META_PREFIX
from layergrad.engine import statistics
from layergrad.engine.options import kind_order

SAMPLE_COLUMNS = ("sample_id", "condition", "source_index", "loss", "n_tokens", "n_prompt_tokens",
                  "n_response_tokens", "truncated", "status", "reason", "boundary", "prompt", "response")
STAT_KEYS = ("sample_id", "condition", "layer", "module", "param")
IFD_COLUMNS = ("loss_conditioned", "loss_direct", "ifd", "ifd_note")  # with ifd=True (engine/ifd.py)


def stats_columns() -> tuple[str, ...]:
    """The columns of the stats table: keys, every registered statistic, bookkeeping."""
    return STAT_KEYS + statistics.names() + ("rank_bound", "finite", "route")


# rows of MoE experts: the expert's index (none on a layer's summary row) and the sample's tokens routed to it
EXPERT_COLUMNS = ("expert", "routed_tokens")
OPTIONAL_STAT_COLUMNS = EXPERT_COLUMNS + ("cosine_next", "cosine_pair", "cosine_next_shuffled", "cosine_pair_shuffled",
                                         "spectrum")


def stats_frame(rows) -> pd.DataFrame:
    """Rows (or a frame) -> DataFrame in schema order, sorted by condition, sample, layer, kind (and expert)."""
    frame = pd.DataFrame(rows)
    columns = list(stats_columns()) + [c for c in OPTIONAL_STAT_COLUMNS if c in frame.columns]
    frame = frame.reindex(columns=columns)
    for column in (c for c in EXPERT_COLUMNS if c in frame.columns):
        frame[column] = frame[column].astype("Int64")
    if frame.empty:
        return frame
    frame["_k"] = frame["module"].map(kind_order)
    keys = ["condition", "sample_id", "layer", "_k"] + (["expert"] if "expert" in frame.columns else []) + ["param"]
    frame = frame.sort_values(keys, na_position="first").drop(columns="_k")
    return frame.reset_index(drop=True)


def layer_rows(stats: pd.DataFrame) -> pd.DataFrame:
    """The rows that are one per (sample, layer, kind): all but single experts' (a MoE layer is there as its
    summary rows, ``experts.<matrix>``); what every mean over modules and every per-layer curve reads."""
    return stats[stats["expert"].isna()] if "expert" in stats.columns else stats


def expert_rows(stats: pd.DataFrame) -> pd.DataFrame:
    """The rows of single MoE experts (``expert.<matrix>``, with ``expert`` and ``routed_tokens``)."""
    return stats[stats["expert"].notna()] if "expert" in stats.columns else stats.iloc[:0]


def samples_frame(rows) -> pd.DataFrame:
    """Rows (or a frame) -> the samples table: layergrad's columns, then the records' own (``meta.*``)."""
    frame = pd.DataFrame(rows)
    meta = [c for c in frame.columns if c.startswith(META_PREFIX)]
    optional = [c for c in IFD_COLUMNS if c in frame.columns]
    frame = frame.reindex(columns=list(SAMPLE_COLUMNS) + optional + meta)
    for column in meta:
        frame[column] = meta_column(frame[column])
    return frame.sort_values(["condition", "source_index", "sample_id"]).reset_index(drop=True)


def meta_column(values: pd.Series) -> pd.Series:
    """A record field as one type: numbers as float when every value given is a number, else text."""
    given = values.dropna()
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in given):
        return values.astype(float)
    return values.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))

