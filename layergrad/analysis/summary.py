"""The terminal summary of a run: per condition the samples computed, skipped (with the most
common reasons) and non-finite, then the mean nuclear norm per layer third and its MAD."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from layergrad.analysis.curves import mad_table
from layergrad.data.samples import reason_kind
from layergrad.runs.store import load_run
from layergrad.schema import layer_rows

TOP_REASONS = 2


def summary_table(stats: pd.DataFrame) -> list[tuple]:
    """Rows (condition, early, middle, late, mad_all, n): means over modules of each segment (a MoE layer's experts
    as their summary rows)."""
    stats = layer_rows(stats)
    table = mad_table(stats, "nuclear_norm", rule="thirds")
    wide = table.pivot_table(index="condition", columns="segment", values="mean", aggfunc="mean")
    mads = table[table.segment == "all"].groupby("condition")["mad"].mean()
    counts = stats.groupby("condition")["sample_id"].nunique()
    order = list(dict.fromkeys(stats["condition"]))  # run order, not alphabetical
    return [(c, wide.loc[c, "early"], wide.loc[c, "middle"], wide.loc[c, "late"], mads[c], int(counts[c]))
            for c in order]


def status_table(samples: pd.DataFrame, conditions: list[str]) -> list[tuple]:
    """Rows (condition, ok, skipped, non-finite, 'N× reason' lines) in run order."""
    rows = []
    for condition in conditions:
        mine = samples[samples.condition == condition]
        counts = mine.status.value_counts()
        reasons = Counter(map(reason_kind, mine[mine.status != "ok"].reason))
        listed = "\n".join(f"{n}× {r}" for r, n in reasons.most_common(TOP_REASONS))
        rows.append((condition, int(counts.get("ok", 0)), int(counts.get("skipped", 0)),
                     int(counts.get("nonfinite", 0)), listed))
    return rows


def print_summary(path: str | Path) -> None:
    """Print both tables of the run in ``path`` (conditions in run order)."""
    from rich.console import Console
    from rich.table import Table

    stats, samples, manifest = load_run(path)
    conditions = list(manifest.get("config", {}).get("data", {})) or sorted(samples.condition.unique())
    console = Console()
    counts = Table(title="Samples per condition")
    for col in ("condition", "ok", "skipped", "non-finite", "most common reasons"):
        counts.add_column(col, justify="right" if col in ("ok", "skipped", "non-finite") else "left")
    for row in status_table(samples, conditions):
        counts.add_row(*map(str, row))
    console.print(counts)
    ok = stats[stats.sample_id.isin(samples.sample_id[samples.status == "ok"])]
    if not ok.empty:
        ok = ok.assign(_o=ok.condition.map({c: i for i, c in enumerate(conditions)})).sort_values("_o", kind="stable")
        model = manifest.get("model", {}).get("alias") or manifest.get("model", {}).get("path", "")
        table = Table(title=f"Mean nuclear norm of the weight gradient (all modules) — {model}")
        for col in ("condition", "early", "middle", "late", "MAD (all layers)", "n"):
            table.add_column(col, justify="left" if col == "condition" else "right")
        for cond, early, middle, late, mad_all, n in summary_table(ok):
            table.add_row(cond, f"{early:.3f}", f"{middle:.3f}", f"{late:.3f}", f"{mad_all:.4f}", str(n))
        console.print(table)
    console.print(f"run: {path}  (stats.parquet, samples.parquet, run.json)")
