"""``layergrad reproduce``: a study's whole grid on one model, its claims in one table, one report.

    layergrad reproduce --model smollm2-135m-instruct --paper-data DIR --limit 20 --out runs/repro
    layergrad reproduce --study followup --model smollm2-135m-instruct --followup-data DIR --limit 8 --out runs/fu
    layergrad reproduce --study my-study.yaml --model smollm2-135m-instruct --out runs/mine

A study (studies/) declares its conditions (a source and attributes each) and its claims (claim kinds
with parameters): ``paper`` (the first paper's grid, the default), ``followup`` (arXiv 2504.10766: every
(metric, pool) high-vs-low pair of its data folder, its R1 traces and the first paper's GSM8K None /
Detailed CoT as the carry-over; computed with IFD and the cosines, max length 2048 unless given, and the
quality pairs once more under random weights, ``OUT/run-reinit``), or a study file of one's own. The
conditions are computed as one run directory (``OUT/run``: resumable, replayable like ``compute``; a
condition none of whose samples can be computed is recorded, not fatal, and the claims that need it say
so); each cell of the study (a task, or the whole study) is analysed on its own
(``OUT/analysis/<cell>/``); the claims of all cells form one table with Holm over the whole of it
(``OUT/claims.csv``, and as Markdown ``OUT/claims.md``; each claim and module pooled over the cells in
``OUT/pooled.csv``) and one report (``OUT/report.html``).
``OUT/reproduce.yaml`` replays the command.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pandas as pd

from layergrad.analysis import curves, figures, report
from layergrad.analysis.analyze import analyze, metric_names, study_claims
from layergrad.analysis.claims import pooled_table
from layergrad.analysis.loading import computed, load_runs
from layergrad.declare import command_words
from layergrad.errors import InputError
from layergrad.runs.config import ReproduceConfig
from layergrad.runs.runner import run
from layergrad.studies import Study, load_study
from layergrad.studies.paper import GROUPS, STYLES, grid  # noqa: F401  (the paper's grid, for callers)
from layergrad.studies.registry import GridFigure

__all__ = ["ReproduceConfig", "reproduce", "run_study", "grid", "GROUPS", "STYLES"]


def run_study(study="paper", *, out="runs/reproduce", log=print, **options) -> Path:
    """A study computed on a model and judged: ``layergrad.reproduce``.

    Args:
        study: ``'paper'``, ``'followup'``, the path of a study file (YAML), or a dict of the same form
            (conditions with source and attributes; claims with statistic, layers, compare, direction).
        out: The output folder.
        log: Where progress lines go.
        **options: As on the command line: ``model``, ``limit``, ``bootstrap``, ``seed``, ``metrics``,
            ``reinit_control``, ``paper_data``, ``followup_data``, ``groups``, ``tasks``, and every compute option.

    Returns:
        The output folder: ``claims.csv`` (every claim per cell and module: effect, CI, test, Holm p, verdict,
        caveats, the samples an inconclusive row would need), ``claims.md``, ``report.html``, ``run/``,
        ``analysis/<cell>/``.
    """
    return reproduce(ReproduceConfig.build(study=study, out=str(out), **options), log=log)


def the_study(config: ReproduceConfig) -> Study:
    return load_study(config.study, statistics=metric_names(), groups=config.groups, tasks=config.tasks,
                      paper_data=config.run.paper_data, followup_data=config.followup_data)


def reproduce(config: ReproduceConfig, log=print) -> Path:
    """Compute the study's conditions, analyse every cell, write the claims table and the report."""
    study = the_study(config)
    conditions = load_conditions(study, config)  # every source read before the model is loaded
    out = Path(config.out)
    for note in study.notes:
        log(note)
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(out / "reproduce.yaml", config.to_dict())
    started = time.perf_counter()
    extra = {"attributes": study.attributes, "study": study.name}
    run(config.run_config(study.data, hooks=study.hooks), log=log, conditions=conditions, extra=extra, keep_going=True)
    control = reinit_control(config, study, conditions, log) if config.reinit_for(study.hooks) else None
    cells = study_cells(study)
    analyses, table, pooled = analyse_grid(out, cells, config, study, control, log)
    table.to_csv(out / "claims.csv", index=False)
    pooled.to_csv(out / "pooled.csv", index=False)
    notes = list(study.notes)
    (out / "claims.md").write_text("".join(f"> {n}\n" for n in notes) + ("\n" if notes else "")
                                   + report.claims_markdown(table, list(cells), pooled), encoding="utf-8")
    figure_paths = draw_figures(study.hooks.figures(study, list(analyses), config), analyses, out / "figures")
    report.write_replication_report(out / "report.html", table, figure_paths, list(cells), model=config.run.model,
                                    limit=config.run.subsample().describe(), paper=config.run.compute.paper,
                                    command=command_line(config, study.hooks), seconds=time.perf_counter() - started,
                                    notes=notes, pooled=pooled)
    log(f"wrote {out}/claims.csv, {out}/report.html and analysis/<cell>/ for {len(cells)} cells")
    return out


def load_conditions(study: Study, config: ReproduceConfig) -> dict:
    """{condition: samples} of every condition of the study; a source that does not load is a one-line error
    naming the condition (and, for a study file, its line)."""
    from layergrad.data.samples import load_samples

    out = {}
    for c in study.conditions:
        try:
            out[c.name] = config.run.subsample().take(load_samples(c.source, strict=False,
                                                                    paper_data=config.run.paper_data))
        except InputError as exc:
            where = study.origins.get(c.name, f"condition '{c.name}'")
            raise InputError(f"{where}: {exc}") from None
    return out


def study_cells(study: Study) -> dict[str, list[str]]:
    """{cell: conditions} analysed together: one per value of the claims' ``per`` attribute (the papers:
    per task), else the whole study as one cell."""
    per = next((c.per for c in study.claims if c.per), None)
    cells: dict[str, list[str]] = {}
    for c in study.conditions:
        cells.setdefault(str(c.attributes.get(per, "")) if per else study.name, []).append(c.name)
    return cells


def analyse_grid(out: Path, cells: dict, config: ReproduceConfig, study: Study, control: pd.DataFrame | None, log):
    """Every cell analysed on its own (OUT/analysis/<cell>/) from one load of the run, and the claims table
    of them all."""
    data = load_runs(out / "run")
    analyses = {}
    for cell, conditions in cells.items():
        present = [c for c in conditions if c in data.groups]
        if not present:
            log(f"{cell}: no condition has a computed sample; its claims say why")
            continue
        log(f"analysing {cell}")
        analyses[cell] = analyze(data, metrics=config.metrics, n_boot=config.bootstrap, seed=config.seed,
                                 conditions=present, claims_of=False, log=lambda *a: None)
    log(f"claims over all cells{f', and on {config.draws} random halves' if config.draws else ''}")
    table, specs = claim_table_of(data, config, study, analyses, control)
    for cell, analysis in analyses.items():  # each cell's report shows its rows of the one table
        analysis.claims = table[table.task == cell].reset_index(drop=True)
        analysis.pooled = pooled_table(analysis.claims, {c.id: c.sign for c in specs})
        folder = out / "analysis" / cell
        if config.task_reports:
            analysis.write(folder, formats=["png"], log=lambda *a: None)
        else:
            analysis.write_tables(folder)
    return analyses, table, pooled_table(table, {c.id: c.sign for c in specs})


def reinit_control(config: ReproduceConfig, study: Study, conditions: dict, log) -> pd.DataFrame | None:
    """The claims once more on re-initialised weights (OUT/run-reinit) for the conditions the study names
    (``hooks.control``: every condition, the follow-up its quality pairs)."""
    names = study.hooks.control(study)
    if not names:
        return None
    log("the random-weights control (--reinit 0)")
    root = run(config.run_config({n: study.data[n] for n in names}, "run-reinit", hooks=study.hooks, reinit=0, ifd=False,
                                 cosine=False),
               log=log, conditions={n: conditions[n] for n in names},
               extra={"attributes": {n: study.attributes[n] for n in names}, "study": study.name}, keep_going=True)
    return claim_table_of(load_runs(root), config, study, missing=False, draws=0)[0]


def claim_table_of(data, config: ReproduceConfig, study: Study, analyses: dict | None = None,
                   control: pd.DataFrame | None = None, missing: bool = True, draws: int | None = None):
    """(the study's claims on a run, Holm over all of it, the claims): caveats from the cells' controls; conditions
    without any computable sample are named in the claims that need them (``missing``); each row's stability over
    ``draws`` random halves (default: the config's)."""
    from layergrad.analysis.claims import baseline_scores

    ok, stats, prompts, lengths = computed(data)
    analyses = analyses or {}
    auroc = pd.concat([a.auroc for a in analyses.values()], ignore_index=True) if analyses else None
    increment = pd.concat([a.increment for a in analyses.values()], ignore_index=True) if analyses else None
    matrices = {"nuclear_norm": curves.sample_matrices(stats, "nuclear_norm")}
    return study_claims(data, stats, matrices, prompts, lengths, config.bootstrap, config.seed, study=study,
                        separability=auroc, increment=increment, control=control, scores=baseline_scores(ok),
                        unavailable=unavailable(data, study) if missing else {},
                        draws=config.draws if draws is None else draws)


def unavailable(data, study: Study) -> dict:
    """{condition: (attributes, why)} of the study's conditions the run holds no computed sample of."""
    out = {}
    for c in study.conditions:
        if c.name in data.groups:
            continue
        rows = data.samples[data.samples.condition == c.name] if "condition" in data.samples else pd.DataFrame()
        reasons = Counter(rows.reason.dropna()) if len(rows) else Counter()
        why = (f"{len(rows)} samples skipped: {reasons.most_common(1)[0][0]}" if reasons
               else "not computed")
        out[c.name] = (c.attributes, why)
    return out


def write_yaml(path: Path, values: dict) -> None:
    import yaml

    from layergrad.runs.store import write_atomic

    write_atomic(path, yaml.safe_dump(values, sort_keys=False))


def draw_figures(layouts: list[GridFigure], analyses: dict, out: Path) -> list[Path]:
    """The study's figures (``hooks.figures``), each drawn from its cells' curves; a figure whose metric has no
    curves is left out."""
    paths = []
    for fig in layouts:
        cells = [label for label, _ in fig.rows if label in analyses]
        curve_rows = pd.concat([analyses[c].curves for c in cells], ignore_index=True) if cells else pd.DataFrame()
        if not cells or fig.metric not in set(curve_rows.metric):
            continue
        drawn = figures.grid_panels(curve_rows, fig.metric, fig.rows, fig.columns,
                                    title=fig.title.format(metric=figures.label(fig.metric)))
        paths += [p for p in figures.save(drawn, out, fig.file, ["png", "svg"]) if p.suffix == ".png"]
    return paths


def command_line(config: ReproduceConfig, hooks) -> str:
    study = config.study if isinstance(config.study, str) else "STUDY.yaml"
    default = ReproduceConfig().study
    parts = ["layergrad reproduce" + (f" --study {study}" if study != default else ""), f"--model {config.run.model}"]
    parts += hooks.words(config)
    if config.tasks:
        parts.append(f"--tasks {','.join(config.tasks)}")
    if config.run.limit:
        parts.append(f"--limit {config.run.limit}" + (f" --subsample-seed {config.run.subsample_seed}"
                                                      if config.run.subsample_seed else ""))
    if config.run.head:
        parts.append(f"--head {config.run.head}")
    parts += command_words(config.run.load) + command_words(config.run.compute)
    return " ".join(parts + ([hooks.data_flag] if hooks.data_flag else []) + [f"--out {config.out}"])
