"""The paper's MAD table (conditions x module/segment) as a frame, Markdown, CSV and LaTeX."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from layergrad.analysis.curves import SEGMENTS, table_rule


def paper_table(mad: pd.DataFrame, groups: list[str], metric: str) -> pd.DataFrame:
    """Rows conditions, columns (module, segment): the paper's MAD table (its rule if it has one)."""
    data = mad[mad.metric == metric]
    data = data[data.rule == table_rule(data)]
    wide = data.pivot_table(index="group", columns=["module", "segment"], values="mad", sort=False)
    order = [g for g in groups if g in wide.index]
    segments = [s for s in SEGMENTS if s in wide.columns.get_level_values(1)]
    modules = list(dict.fromkeys(data.module))
    return wide.reindex(index=order, columns=pd.MultiIndex.from_product([modules, segments]))


def write_paper_tables(mad: pd.DataFrame, groups: list[str], out: Path) -> None:
    for metric in mad.metric.unique():
        table = paper_table(mad, groups, metric)
        flat = table.copy()
        flat.columns = [f"{m} {s}" for m, s in table.columns]
        flat.to_csv(out / f"mad_{metric}.csv", float_format="%.6g")
        (out / f"mad_{metric}.md").write_text(markdown_table(flat), encoding="utf-8")
        latex = table.style.format("{:.3g}", na_rep="--").format_index(escape="latex", axis=0) \
            .format_index(escape="latex", axis=1).to_latex(hrules=True, multicol_align="c")
        (out / f"mad_{metric}.tex").write_text(latex, encoding="utf-8")


def markdown_table(frame: pd.DataFrame) -> str:
    head = "| condition | " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|---|" + "---:|" * len(frame.columns)
    body = ["| " + " | ".join([str(idx).replace("|", "\\|")] + [f"{v:.3g}" if pd.notna(v) else "--" for v in row])
            + " |" for idx, row in zip(frame.index, frame.to_numpy())]
    return "\n".join([head, rule, *body]) + "\n"
