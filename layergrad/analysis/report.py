"""The self-contained HTML report: it renders what it is given (claims, figures, baselines,
details, tables, runs, examples) and computes nothing itself.

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

EXAMPLE_CHARS = 400
SCORE_NAMES = ("loss", "length (tokens)", "nuclear norm / loss", "mean nuclear norm", "profile (CV)")


def write_report(path: Path, *, title: str, claims: list[dict], headline: Path | None, separability: list[dict],
                 figures: list[Path], details: list[dict], tables: list[tuple[str, pd.DataFrame]], runs: list[dict],
                 examples: list[dict]) -> Path:
    """Render the report: claims first, then the headline figure, baselines, figures, collapsed details."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("layergrad.analysis", "templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True))
    html = env.get_template("report.html.j2").render(
        version=__version__, created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), title=title,
        claims=claims, headline=embed(headline) if headline else None, separability=separability,
        score_names=SCORE_NAMES, figures=[embed(p) for p in figures], details=details,
        tables=[{"title": name, "html": html_table(frame)} for name, frame in tables], runs=runs, examples=examples)
    path.write_text(html, encoding="utf-8")
    return path


def embed(path: Path) -> dict:
    return {"name": path.stem, "src": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()}


def html_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """DataFrame -> escaped HTML table (pandas escapes cell text)."""
    return frame.to_html(index=False, escape=True, na_rep="–", float_format=lambda v: f"{v:.{digits}g}",
                         classes="data", border=0)


def run_rows(data) -> list[dict]:
    """One entry per run: model, layers, dtype, device, version and per-condition sample counts."""
    rows = []
    for label, manifest in data.manifests.items():
        model = manifest.get("model", {})
        samples = data.samples[data.samples.run == label]
        counts = samples.groupby(["group", "status"]).size().unstack(fill_value=0)
        counts = counts.reindex([g for g in data.runs[label] if g in counts.index])
        rows.append({"label": label, "model": model.get("alias") or model.get("path") or "?",
                     "layers": model.get("layers", data.stats[data.stats.run == label].layer.max() + 1),
                     "dtype": model.get("dtype", "?"), "device": model.get("device", "?"),
                     "version": manifest.get("layergrad_version", "imported" if "imported" in manifest else "?"),
                     "finished": manifest.get("finished", ""),
                     "conditions": [{"name": c, "counts": ", ".join(f"{k} {int(v)}" for k, v in r.items() if v)}
                                    for c, r in counts.iterrows()]})
    return rows


def examples(data) -> list[dict]:
    """The first computed sample of every group, clipped."""
    rows = []
    for group in data.groups:
        sample = data.samples[(data.samples.group == group) & (data.samples.status == "ok")].head(1)
        for s in sample.itertuples():
            rows.append({"group": group, "prompt": clip(s.prompt), "response": clip(s.response),
                         "tokens": s.n_response_tokens})
    return rows


def clip(text) -> str:
    text = "" if text is None or (isinstance(text, float) and pd.isna(text)) else str(text)
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " …"
