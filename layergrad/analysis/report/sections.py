"""What each report shows, built from the analysis tables (nothing is computed here; ``a`` is an
analyze.Analysis): the analysis report's claims, separability, correlations, details, tables, runs
and examples; the replication report's claims x tasks cells and its Markdown."""

from __future__ import annotations

import pandas as pd

from layergrad.analysis.separability import select
from layergrad.analysis.report.text import VERDICT_WORDS, cell_text, claim_evidence, pair_details, pct
from layergrad.analysis.tables import paper_table


def report_content(a, paths: dict) -> dict:
    """Everything the report shows, in its order: claims, headline, baselines, figures, details."""
    png = {key: next(p for p in files if p.suffix == ".png") for key, files in paths.items()}
    scores = score_columns(a)
    return {"title": report_title(a), "claims": claim_rows(a.claims), "verdict_words": VERDICT_WORDS,
            "pooled": pooled_rows(a.pooled), "headline": png.get(("headline", "nuclear_norm")),
            "separability": separability_rows(a, scores), "score_names": [SCORE_COLUMNS[s] for s in scores],
            "correlations": correlation_rows(a.correlations),
            "correlation_figure": png.get(("correlations", "")),
            "figures": [p for key, p in png.items() if key[0] not in ("headline", "correlations")],
            "experts": expert_note(a),
            "details": pair_details(a.tests, a.length, a.pairs), "tables": report_tables(a),
            "runs": run_rows(a.data), "examples": examples(a.data)}


def report_title(a) -> str:
    models = ", ".join(dict.fromkeys(str(m.get("model", {}).get("alias") or m.get("model", {}).get("path") or "?")
                                     for m in a.data.manifests.values()))
    n = a.data.samples[a.data.samples.status == "ok"].groupby("group").size()
    return f"{models}: {len(a.groups)} conditions, {int(n.min()) if len(n) else 0}–{int(n.max()) if len(n) else 0} " \
           f"samples each"


def claim_rows(table: pd.DataFrame) -> list[dict]:
    """One row per (claim, task) for the top of the report."""
    if table.empty:
        return []
    rows = []
    several = table.task.nunique() > 1
    for summary in table[table.module == "all modules"].itertuples():
        modules = table[(table.claim == summary.claim) & (table.task == summary.task) & (table.module != "all modules")]
        rows.append({"claim": summary.claim + (f" · {summary.task}" if several and summary.task else ""),
                     "statement": summary.statement, "definition": summary.definition, "verdict": summary.verdict,
                     "marks": verdict_marks(summary), "evidence": claim_evidence(summary, modules),
                     "caveats": summary.caveats or ""})
    return rows


def verdict_marks(row) -> str:
    """What goes beside a verdict: the raw verdict of a confounded row, 'unstable'."""
    marks = []
    if row.verdict == "confounded" and isinstance(row.raw_verdict, str) and row.raw_verdict:
        marks.append(f"raw: {row.raw_verdict}")
    if row.unstable is True:
        marks.append("unstable")
    return ", ".join(marks)


def pooled_rows(table: pd.DataFrame) -> list[dict]:
    """The pooled evidence of every claim over its cells, the mean of the modules first (the report's table)."""
    if table is None or table.empty:
        return []
    rows = []
    for r in table.sort_values("module", key=lambda m: m != "all modules", kind="stable").itertuples():
        relative = "relative" in str(r.effect_kind)
        value = (f"{pct(r.effect)} [{pct(r.ci_low)}, {pct(r.ci_high)}]" if relative
                 else f"{r.effect:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]")
        rows.append({"claim": r.claim, "module": r.module, "verdict": r.verdict,
                     "marks": f"raw: {r.raw_verdict}" if r.verdict == "confounded" else "",
                     "effect": value, "tasks": f"{r.pooled_tasks} of {r.tasks}" + (
                         f" ({r.confounded_tasks} confounded, left out)" if r.confounded_tasks and r.pooled_tasks
                         else ""), "i2": f"{r.i2:.0%}", "p": f"{r.p_holm:.2g}"})
    return rows


SCORE_COLUMNS = {("loss", ""): "loss", ("length", ""): "length", ("ifd", ""): "IFD",
                 ("per_loss", "nuclear_norm"): "nuclear norm / loss", ("mean", "nuclear_norm"): "mean nuclear norm",
                 ("profile", "nuclear_norm"): "profile (CV)"}  # (measure, metric) of the AUROC table -> column


def score_columns(a) -> list[tuple[str, str]]:
    """The separability scores to show: IFD only when the run computed it."""
    return [s for s in SCORE_COLUMNS if s[0] != "ifd" or (a.auroc.measure == "ifd").any()]


def correlation_rows(table: pd.DataFrame) -> list[dict]:
    """The pooled correlations (per run; else every scope), each with its CI and partial ρ in words."""
    pooled = table[table.scope.str.contains("+", regex=False)] if len(table) else table
    rows = []
    for r in (pooled if len(pooled) else table).itertuples():
        rows.append({"scope": r.scope, "field": r.field, "score": r.score, "n": r.n,
                     "rho": f"{r.spearman:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
                     "partial": f"{r.partial_spearman:+.2f} [{r.partial_ci_low:+.2f}, {r.partial_ci_high:+.2f}]"})
    return rows


def separability_rows(a, scores: list[str]) -> list[dict]:
    """Per pair (correct vs irrelevant ones, else all): each score's AUROC in words, and the increment."""
    pairs = a.irrelevant_pairs or a.pairs
    rows = []
    for x, y in pairs:
        if a.auroc[(a.auroc.a == x) & (a.auroc.b == y)].empty:
            continue
        cells = []
        for measure, metric in scores:
            r = select(a.auroc, x, y, measure, metric)
            if r is not None:
                cells.append({"value": f"{r.auroc:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]", "direction": r.direction})
            else:
                cells.append({"value": "–", "direction": ""})
        inc = a.increment[(a.increment.a == x) & (a.increment.b == y)]
        rows.append({"pair": f"{x} vs {y}", "cells": cells, "increment": "; ".join(inc.verdict)})
    return rows


def report_tables(a) -> list[tuple[str, pd.DataFrame]]:
    """(title, frame) of every table the report shows (collapsed), in order."""
    out = []
    if not a.claims.empty:
        out.append(("Claims per module (claims.csv)", a.claims[a.claims.module != "all modules"].drop(
            columns=["statement", "definition"])))
    if not a.mad.empty:
        table = paper_table(a.mad, a.groups, "nuclear_norm").reset_index(names="condition")
        table.columns = [c if isinstance(c, str) else " ".join(c).strip() for c in table.columns]
        out.append(("MAD of the mean nuclear-norm curve (the paper's table)", table))
    if not a.tests.empty:
        seg = a.tests[(a.tests.metric == "nuclear_norm") & a.tests.unit.isin(["early", "middle", "late", "all"])]
        cols = ["a", "b", "module", "unit", "mean_a", "mean_b", "rel_change", "rel_change_low", "rel_change_high",
                "test", "p_holm", "effect", "n_a", "n_b"]
        out.append(("Condition comparisons of the nuclear norm per segment (tests.csv has every layer)", seg[cols]))
    if not a.auroc.empty:
        out.append(("Telling conditions apart: AUROC of every score, 95% CI (auroc.csv)", a.auroc))
    if not a.increment.empty:
        out.append(("What the gradient profile adds beyond loss and length (and IFD when computed; increment.csv)",
                    a.increment))
    if not a.correlations.empty:
        out.append(("The records' numeric fields against every score, per condition too (correlations.csv)",
                    a.correlations))
    if not a.length.empty and "adjusted_change" in a.length:
        lc = a.length[(a.length.kind == "length-controlled") & (a.length.metric == "nuclear_norm")]
        cols = ["a", "b", "module", "segment", "change", "change_low", "change_high", "adjusted_change",
                "adjusted_low", "adjusted_high", "length_overlap", "n"]
        out.append(("Length control: change of the nuclear norm before and after regressing out log response "
                    "length (length_overlap 0 = lengths disjoint, the adjustment extrapolates)", lc[cols]))
    if not a.rd.empty:
        out.append(("Relative difference RD(a, b) of the mean curves", a.rd))
    if not a.experts.empty:
        out.append(("MoE experts: per layer and expert, the share of routed tokens and of the gradient load "
                    "(experts.csv)", a.experts))
    return out


def expert_note(a) -> str:
    """One paragraph on how a MoE run's experts are shown ('' without experts)."""
    if a.experts.empty:
        return ""
    n = a.experts[["layer", "expert"]].drop_duplicates()
    return (f"This model routes tokens to experts ({n.expert.nunique()} per layer in {n.layer.nunique()} layers). "
            "Each expert's gradient is measured from the tokens routed to it; the curves and claims read each "
            "layer's experts as one block-diagonal map (modules experts.*: the union of the experts' spectra, "
            "its nuclear norm the sum of theirs). The experts figure shows, per condition, which experts its tokens "
            "reach and which its gradient loads (each expert's share of the layer's nuclear norm; an expert a sample "
            "routed no token to has no gradient, a share of 0).")


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


EXAMPLE_CHARS = 400


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



# ----------------------------------------------------------------------------- replication

SHORT = {"holds": "holds", "fails": "FAILS", "inconclusive": "inconcl.", "confounded": "confounded", "not-applicable": "n/a",
         "none": ""}


def claim_order(table: pd.DataFrame) -> list[str]:
    """The table's claims in the order of their first row (the study's order)."""
    return list(dict.fromkeys(table.claim))


def claim_cells(table: pd.DataFrame, claim: str, tasks: list[str]) -> dict:
    """One row of the replication table: the claim and, per task, its verdict and numbers."""
    from layergrad.analysis.claims import ALL

    cells = []
    for task in tasks:
        summary = table[(table.claim == claim) & (table.task == task) & (table.module == ALL)]
        if summary.empty:
            cells.append({"verdict": "none", "text": "—", "title": "not a claim for this task"})
            continue
        s = summary.iloc[0]
        modules = table[(table.claim == claim) & (table.task == task) & (table.module != ALL)]
        caveat = "" if pd.isna(s.caveats) else str(s.caveats)
        cells.append({"verdict": s.verdict, "marks": verdict_marks(s), "text": cell_text(s, modules), "title": caveat})
    first = table[table.claim == claim].iloc[0]
    return {"claim": claim, "statement": first.statement, "definition": first.definition, "cells": cells}


def short(cell: dict) -> str:
    """A grid cell's verdict in a word or two: 'confounded (raw: holds)', 'holds (unstable)'."""
    word = SHORT[cell["verdict"]]
    return f"{word} ({cell['marks']})" if cell.get("marks") else word


def claims_markdown(table: pd.DataFrame, tasks: list[str], pooled: pd.DataFrame | None = None) -> str:
    """Markdown: the verdict grid (claims x tasks), the pooled evidence over the tasks, then one line per applicable
    (claim, task) with its numbers and caveats."""
    order = claim_order(table)
    rows = {c: claim_cells(table, c, tasks) for c in order}
    lines = ["| claim | " + " | ".join(tasks) + " |", "|---|" + ":---:|" * len(tasks)]
    for claim in order:
        lines.append(f"| {claim} | " + " | ".join(short(c) for c in rows[claim]["cells"]) + " |")
    lines += ["", VERDICT_WORDS]
    pooled_lines = [f"| {r['claim']} | {r['module']} | {r['verdict']}{' (' + r['marks'] + ')' if r['marks'] else ''} | "
                    f"{r['effect']} | {r['tasks']} | {r['i2']} | {r['p']} |" for r in pooled_rows(pooled)]
    if pooled_lines:
        lines += ["", "Pooled over the tasks (random effects; claims and modules with two tasks or more):", "",
                  "| claim | module | verdict | pooled effect [95% CI] | tasks pooled | I² | Holm p |",
                  "|---|---|---|---|---|---|---|", *pooled_lines]
    lines += ["", "| claim | task | verdict | evidence | caveats |", "|---|---|---|---|---|"]
    for claim in order:
        for task, cell in zip(tasks, rows[claim]["cells"]):
            if cell["verdict"] in ("none", "not-applicable"):
                continue
            caveat = cell["title"].replace("|", "/")
            lines.append(f"| {claim} | {task} | {short(cell)} | {cell['text']} | {caveat} |")
    statements = [f"- **{c}** {rows[c]['statement']}" for c in order]
    return "\n".join(statements + [""] + lines) + "\n"
