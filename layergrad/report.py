"""The self-contained HTML report: manifests, findings, figures (embedded), tables, examples.

Rendered with Jinja2 autoescaping, so every dataset string shows as text.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import pandas as pd

from . import __version__

EXAMPLE_CHARS = 400


def write_report(path: Path, *, data, frames, findings, figures, pairs) -> Path:
    env = jinja2.Environment(loader=jinja2.PackageLoader("layergrad", "templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True))
    html = env.get_template("report.html.j2").render(
        version=__version__, created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        runs=run_rows(data), findings=findings, figures=[embed(p) for p in figures if p.suffix == ".png"],
        tables=report_tables(frames, data), examples=examples(data))
    path.write_text(html, encoding="utf-8")
    return path


def embed(path: Path) -> dict:
    return {"name": path.stem, "src": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()}


def run_rows(data) -> list[dict]:
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


def html_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """DataFrame -> escaped HTML table (pandas escapes cell text)."""
    return frame.to_html(index=False, escape=True, na_rep="–", float_format=lambda v: f"{v:.{digits}g}",
                         classes="data", border=0)


def report_tables(frames, data) -> list[dict]:
    from .analyze import paper_table

    out = []
    mad = frames["mad"]
    if not mad.empty:
        table = paper_table(mad, data.groups, "nuclear_norm").reset_index(names="condition")
        table.columns = [c if isinstance(c, str) else " ".join(c).strip() for c in table.columns]
        out.append({"title": "MAD of the mean nuclear-norm curve (the paper's table)", "html": html_table(table)})
    tests = frames["tests"]
    if not tests.empty:
        seg = tests[(tests.metric == "nuclear_norm") & tests.unit.isin(["early", "middle", "late", "all"])]
        cols = ["a", "b", "module", "unit", "mean_a", "mean_b", "rel_change", "rel_change_low", "rel_change_high",
                "test", "p_holm", "effect", "n_a", "n_b"]
        out.append({"title": "Condition comparisons of the nuclear norm per segment (tests.csv has every layer)",
                    "html": html_table(seg[cols])})
    if not frames["auroc"].empty:
        out.append({"title": "Telling conditions apart from gradients (AUROC, 95% CI)",
                    "html": html_table(frames["auroc"])})
    length = frames["length"]
    if not length.empty and "adjusted_change" in length:
        lc = length[(length.kind == "length-controlled") & (length.metric == "nuclear_norm")]
        cols = ["a", "b", "module", "segment", "change", "change_low", "change_high", "adjusted_change",
                "adjusted_low", "adjusted_high", "length_overlap", "n"]
        out.append({"title": "Length control: change of the nuclear norm before and after regressing out log "
                             "response length (length_overlap 0 = lengths disjoint, the adjustment extrapolates)",
                    "html": html_table(lc[cols])})
    if not frames["rd"].empty:
        out.append({"title": "Relative difference RD(a, b) of the mean curves", "html": html_table(frames["rd"])})
    return out


def examples(data) -> list[dict]:
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
