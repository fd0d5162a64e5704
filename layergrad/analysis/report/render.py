"""Rendering: the self-contained HTML pages (the analysis report, the replication report) from what
sections.py built; nothing is computed here.

Rendered with Jinja2 autoescaping, so every dataset string shows as text; figures are
embedded as data URIs and the page carries no scripts.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import pandas as pd

from layergrad import __version__



def render(template: str, path: Path, **context) -> Path:
    """Render one of the templates (autoescaped) into ``path``."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("layergrad.analysis.report", "templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True))
    path.write_text(env.get_template(template).render(version=__version__, **context), encoding="utf-8")
    return path


def write_report(path: Path, *, title: str, claims: list[dict], verdict_words: str, pooled: list[dict],
                 headline: Path | None, separability: list[dict],
                 score_names: list[str], correlations: list[dict], correlation_figure: Path | None, figures: list[Path],
                 details: list[dict], tables: list[tuple[str, pd.DataFrame]], runs: list[dict],
                 examples: list[dict], experts: str = "") -> Path:
    """Render the report: claims first, then the headline figure, baselines, figures, collapsed details."""
    return render("report.html.j2", path,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), title=title,
        claims=claims, verdict_words=verdict_words, pooled=pooled, headline=embed(headline) if headline else None,
        separability=separability,
        score_names=score_names, correlations=correlations,
        correlation_figure=embed(correlation_figure) if correlation_figure else None,
        figures=[embed(p) for p in figures], experts=experts, details=details,
        tables=[{"title": name, "html": html_table(frame)} for name, frame in tables], runs=runs, examples=examples)


def embed(path: Path) -> dict:
    return {"name": path.stem, "src": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()}


def html_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """DataFrame -> escaped HTML table (pandas escapes cell text)."""
    return frame.to_html(index=False, escape=True, na_rep="–", float_format=lambda v: f"{v:.{digits}g}",
                         classes="data", border=0)
