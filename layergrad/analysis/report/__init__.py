"""The reports, in one place: sections.py builds every section from the analysis tables, text.py
says numbers in words (one format everywhere), render.py renders the templates (autoescaped,
self-contained). ``write_analysis_report`` is analyze's page, ``write_replication_report`` the
page of ``reproduce``; ``claims_markdown`` its claims.md."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from layergrad.analysis.report.render import embed, render, write_report
from layergrad.analysis.report.sections import claim_cells, claim_order, claims_markdown, pooled_rows, report_content
from layergrad.analysis.report.text import VERDICT_WORDS

__all__ = ["write_analysis_report", "write_replication_report", "claims_markdown", "embed"]


def write_analysis_report(path: Path, analysis, figure_paths: dict) -> Path:
    """report.html of an ``Analysis``: claims, headline, baselines, figures, details, tables, runs."""
    return write_report(path, **report_content(analysis, figure_paths))


def write_replication_report(path: Path, table: pd.DataFrame, figure_paths: list[Path], tasks: list[str], *,
                             model: str, limit, paper: bool, command: str, seconds: float, notes=(),
                             pooled: pd.DataFrame | None = None) -> Path:
    """The claims x tasks table (a coloured verdict with its numbers per cell), the pooled evidence, definitions,
    figures."""
    return render("replication.html.j2", path, model=model, limit=limit, paper=paper, minutes=seconds / 60, notes=notes,
                  command=command, tasks=tasks, rows=[claim_cells(table, c, tasks) for c in claim_order(table)],
                  figures=[embed(p) for p in figure_paths], verdict_words=VERDICT_WORDS, pooled=pooled_rows(pooled))
