"""``layergrad analyze`` / ``compare``: runs -> CSV tables, figures, paper tables, HTML report.

The data flow of one analysis: load the runs' groups (groups.py), per metric the per-sample
layer matrices and their curves, MAD and RD (curves.py), tests (tests.py), separability
(separability.py) and length control (length.py); then the paper's tables (tables.py), the
figures (figures.py), the findings in sentences (findings.py) and the report (report.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from layergrad.analysis import (
    curves,
    figures,
    findings,
    length,
    report,
    separability,
    tables,
    tests,
)
from layergrad.analysis.groups import (
    Loaded,
    across_run_pairs,
    load_runs,
    within_run_pairs,
)
from layergrad.errors import InputError

DEFAULT_METRICS = ("nuclear_norm", "sigma1_ratio", "effective_rank")
FIGURE_FORMATS = ("png", "svg", "pdf")
TABLES = ("curves", "mad", "rd", "tests", "auroc", "length")


def analyze(paths: list[str], out: str | Path, *, metrics=DEFAULT_METRICS, n_boot: int = 1000, seed: int = 0,
            formats=("png", "svg"), across_runs: bool = False, log=print) -> Path:
    """Write every table, figure and the report for ``paths`` into ``out``; return ``out``."""
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad:
        raise InputError(f"unknown figure format {bad[0]!r}; use {', '.join(FIGURE_FORMATS)}")
    data = load_runs(paths)
    out = make_folder(Path(out))
    metrics = choose_metrics(list(metrics), data.stats)
    pairs = across_run_pairs(data) if across_runs else within_run_pairs(data)
    if across_runs and not pairs:
        raise InputError("the runs share no condition name; compare needs the same conditions in each run")
    ok = data.samples[data.samples.status == "ok"]
    prompts = {g: rows.set_index("sample_id")["prompt"] for g, rows in ok.groupby("group")}
    lengths = {g: rows.set_index("sample_id")["n_response_tokens"] for g, rows in ok.groupby("group")}
    stats = data.stats[data.stats.sample_id.isin(set(ok.sample_id))]
    with warnings.catch_warnings():  # empty segments and constant columns give NaN, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        frames, analysed = metric_tables(stats, metrics, pairs, prompts, lengths, n_boot, seed, log)
    if not analysed:
        raise InputError(f"nothing to analyse: no finite values of {', '.join(metrics)} in {', '.join(paths)}")
    for name, frame in frames.items():
        frame.to_csv(out / f"{name}.csv", index=False)
    tables.write_paper_tables(frames["mad"], data.groups, out / "tables")
    figure_paths = draw_figures(frames, data, pairs, analysed, out / "figures", formats)
    sentences = findings.write_findings(frames, data.groups, pairs)
    report.write_report(out / "report.html", runs=report.run_rows(data), findings=sentences,
                        figures=figure_paths, tables=report_tables(frames, data.groups),
                        examples=report.examples(data))
    log(f"wrote {out}/report.html, {len(figure_paths)} figures, tables/ and {len(frames)} CSV files")
    return out


def make_folder(out: Path) -> Path:
    try:
        (out / "tables").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out}: {exc.strerror}; choose another --out") from None
    return out


def choose_metrics(metrics: list[str], stats: pd.DataFrame) -> list[str]:
    """The asked metrics (plus cosine_next when the run has it and the defaults were asked); unknown ones rejected."""
    if metrics == list(DEFAULT_METRICS) and "cosine_next" in stats.columns and stats.cosine_next.notna().any():
        metrics.append("cosine_next")  # the run was computed with --cosine
    unknown = [m for m in metrics if m not in stats.columns]
    if unknown:
        raise InputError(f"unknown metric {unknown[0]!r}; choose from {', '.join(DEFAULT_METRICS)}, "
                         "frobenius_norm, stable_rank, sigma_max")
    return metrics


def metric_tables(stats, metrics, pairs, prompts, lengths, n_boot, seed, log) -> tuple[dict, list[str]]:
    """{table name: frame} over all metrics, and the metrics that had data."""
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in TABLES}
    analysed = []
    for i, metric in enumerate(metrics):
        matrices = curves.sample_matrices(stats, metric)
        if not matrices:
            log(f"skipping {metric}: no sample has finite values (e.g. not in an imported file)")
            continue
        analysed.append(metric)
        log(f"analysing {metric} ({len({g for g, _ in matrices})} conditions, {len(pairs)} comparisons)")
        curve_rows, mad_rows = curves.curve_tables(matrices, metric, n_boot, seed + i)
        parts["curves"].append(curve_rows)
        parts["mad"].append(mad_rows)
        parts["rd"].append(curves.rd_table(matrices, pairs, metric, n_boot, seed + i))
        parts["tests"].append(tests.tests_table(matrices, prompts, pairs, metric, n_boot, seed + i))
        parts["auroc"].append(separability.auroc_table(stats, prompts, pairs, metric, min(n_boot, 500), seed + i))
        parts["length"].append(length.length_table(matrices, lengths, pairs, metric))
    return {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for k, v in parts.items()}, analysed


def draw_figures(frames, data: Loaded, pairs, metrics, out: Path, formats) -> list[Path]:
    curve_rows, mad_rows = frames["curves"], frames["mad"]
    paths = []
    for metric in metrics:
        paths += figures.panels(curve_rows, metric, data.groups, out, formats)
        paths += figures.overlays(curve_rows, metric, data.groups, out, formats, name=f"conditions_{metric}",
                                  title=f"{figures.label(metric)} per layer, mean with 95% bootstrap CI")
        irrelevant = [(a, b) for a, b in pairs if b == f"{a}@irrelevant"]
        if irrelevant:
            paths += figures.pair_overlays(curve_rows, metric, irrelevant, out, formats, name=f"irrelevant_{metric}",
                                           title=f"Correct (solid) vs irrelevant (dashed) responses: "
                                                 f"{figures.label(metric)}, 95% CI")
        paths += figures.mad_bars(mad_rows, metric, data.groups, out, formats)
        paths += figures.heatmap(curve_rows, metric, data.groups, out, formats)
    return paths


def report_tables(frames: dict, groups: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(title, frame) of every table the report shows, in order."""
    out = []
    mad = frames["mad"]
    if not mad.empty:
        table = tables.paper_table(mad, groups, "nuclear_norm").reset_index(names="condition")
        table.columns = [c if isinstance(c, str) else " ".join(c).strip() for c in table.columns]
        out.append(("MAD of the mean nuclear-norm curve (the paper's table)", table))
    test_rows = frames["tests"]
    if not test_rows.empty:
        seg = test_rows[(test_rows.metric == "nuclear_norm") & test_rows.unit.isin(["early", "middle", "late", "all"])]
        cols = ["a", "b", "module", "unit", "mean_a", "mean_b", "rel_change", "rel_change_low", "rel_change_high",
                "test", "p_holm", "effect", "n_a", "n_b"]
        out.append(("Condition comparisons of the nuclear norm per segment (tests.csv has every layer)", seg[cols]))
    if not frames["auroc"].empty:
        out.append(("Telling conditions apart from gradients (AUROC, 95% CI)", frames["auroc"]))
    lengths = frames["length"]
    if not lengths.empty and "adjusted_change" in lengths:
        lc = lengths[(lengths.kind == "length-controlled") & (lengths.metric == "nuclear_norm")]
        cols = ["a", "b", "module", "segment", "change", "change_low", "change_high", "adjusted_change",
                "adjusted_low", "adjusted_high", "length_overlap", "n"]
        out.append(("Length control: change of the nuclear norm before and after regressing out log response "
                    "length (length_overlap 0 = lengths disjoint, the adjustment extrapolates)", lc[cols]))
    if not frames["rd"].empty:
        out.append(("Relative difference RD(a, b) of the mean curves", frames["rd"]))
    return out
