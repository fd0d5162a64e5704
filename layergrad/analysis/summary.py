"""A short terminal summary of a run: per condition, mean nuclear norm per layer third and MAD."""

from __future__ import annotations

from pathlib import Path

from layergrad.analysis.curves import mad_table
from layergrad.runs.store import load_run


def summary_table(stats):
    """Rows (condition, early, middle, late, mad_all, n): means over modules of each segment."""
    table = mad_table(stats, "nuclear_norm", rule="thirds")
    wide = table.pivot_table(index="condition", columns="segment", values="mean", aggfunc="mean")
    mads = table[table.segment == "all"].groupby("condition")["mad"].mean()
    counts = stats.groupby("condition")["sample_id"].nunique()
    order = list(dict.fromkeys(stats["condition"]))  # run order, not alphabetical
    return [(c, wide.loc[c, "early"], wide.loc[c, "middle"], wide.loc[c, "late"], mads[c], int(counts[c]))
            for c in order]


def print_summary(path: str | Path) -> None:
    from rich.console import Console
    from rich.table import Table

    stats, samples, manifest = load_run(path)
    conditions = list(manifest.get("config", {}).get("data", {})) or sorted(stats.condition.unique())
    stats = stats.assign(_o=stats.condition.map({c: i for i, c in enumerate(conditions)})).sort_values("_o")
    table = Table(title=f"Mean nuclear norm of the weight gradient (all modules) — {manifest.get('model', {}).get('alias', '')}")
    for col in ("condition", "early", "middle", "late", "MAD (all layers)", "n"):
        table.add_column(col, justify="left" if col == "condition" else "right")
    for cond, early, middle, late, mad_all, n in summary_table(stats):
        table.add_row(cond, f"{early:.3f}", f"{middle:.3f}", f"{late:.3f}", f"{mad_all:.4f}", str(n))
    console = Console()
    console.print(table)
    skipped = samples[samples.status != "ok"]
    if len(skipped):
        console.print(f"{len(skipped)} samples not computed; see samples.parquet (status, reason)")
    console.print(f"run: {path}  (stats.parquet, samples.parquet, run.json)")
