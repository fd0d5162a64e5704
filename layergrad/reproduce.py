"""``layergrad reproduce``: a paper's whole grid on one model, its claims per task, one report.

    layergrad reproduce --model smollm2-135m-instruct --paper-data DIR --limit 20 --out runs/repro
    layergrad reproduce --study followup --model smollm2-135m-instruct --followup-data DIR --limit 8 --out runs/fu

``--study followup`` (arXiv 2504.10766): every (metric, pool) high-vs-low pair of the follow-up's data
folder found by its layout (data/followup.py), its two R1 reasoning-trace sets and the first paper's
GSM8K None / Detailed CoT as the carry-over (when the paper's data is at hand); claims F1-F6
(analysis/followup_claims.py); computed with IFD and the cosines (``--ifd --cosine``), max length
2048 unless given, and the quality pairs once more under random weights (``OUT/run-reinit``,
``--reinit 0``) for the F1/F2 control (``--no-reinit-control`` skips it).

The grid (PAPER.md §3): six reasoning tasks x None / Simplified / Detailed CoT, three MATH
subjects x Simplified / Detailed, Wikipedia popular articles at 100 / 500 / 1000 words and
unpopular ones; every condition also with the paper's irrelevant responses. It is computed as
one run directory (``OUT/run``: resumable, replayable like ``compute``), each task is analysed
on its own (``OUT/analysis/<task>/``: the usual tables, figures and report), and the claims of
all tasks form one table with Holm over the whole of it (``OUT/claims.csv``, and as Markdown
``OUT/claims.md``) and one replication report (``OUT/report.html``). ``OUT/reproduce.yaml`` replays the command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import pandas as pd

from layergrad.analysis import claims, curves, figures, report
from layergrad.analysis.analyze import DEFAULT_METRICS, analyze
from layergrad.analysis.loading import computed, load_runs
from layergrad.data.paper import COT_TASKS, MATH_TASKS, WIKI
from layergrad.declare import command_words
from layergrad.errors import InputError, did_you_mean
from layergrad.engine.options import ComputeOptions
from layergrad.models import LoadOptions
from layergrad.runs.config import RunConfig, flatten, nest, read_yaml
from layergrad.runs.runner import run

STUDIES = ("paper", "followup")
FOLLOWUP_MAX_LENGTH = 2048  # the follow-up's scripts (its README runs 4096)
GROUPS = {"cot": COT_TASKS, "math": tuple(MATH_TASKS), "wiki": ("wiki",)}
STYLES = {"cot": ("none", "simplified", "detailed"), "math": ("simplified", "detailed"), "wiki": tuple(WIKI)}


@dataclass(frozen=True)
class ReproduceConfig:
    """Everything ``reproduce`` needs; written to ``OUT/reproduce.yaml``. ``load`` and ``compute`` are
    the declared option objects every run has (their fields may be given flat, as on the CLI)."""

    model: str = "smollm2-135m-instruct"
    out: str = "runs/reproduce"
    study: str = "paper"  # paper (the first paper's grid) | followup
    followup_data: str | None = None
    reinit_control: bool = True  # followup: the quality pairs also under random weights (F1/F2 control)
    groups: tuple = ("cot", "math", "wiki")
    tasks: tuple | None = None  # None: every task of the groups
    limit: int | None = None
    paper_data: str | None = None
    metrics: tuple = DEFAULT_METRICS
    bootstrap: int = 1000
    seed: int = 0
    task_reports: bool = True  # figures and report.html per task (the CSVs are always written)
    quiet: bool = False
    overwrite: bool = False
    load: LoadOptions = field(default_factory=LoadOptions)
    compute: ComputeOptions = field(default_factory=ComputeOptions)

    def __post_init__(self):
        if self.study not in STUDIES:
            raise InputError(f"unknown study '{self.study}'.{did_you_mean(self.study, STUDIES)} Studies: "
                             f"{', '.join(STUDIES)}")
        if self.study == "followup":
            return  # its cells come from the data folder; --tasks filters them (followup_grid)
        for name in self.groups:
            if name not in GROUPS:
                raise InputError(f"unknown group '{name}'.{did_you_mean(name, GROUPS)} Groups: {', '.join(GROUPS)}")
        known = [t for g in self.groups for t in GROUPS[g]]
        for task in self.tasks or ():
            if task not in known:
                raise InputError(f"unknown task '{task}' in groups {', '.join(self.groups)}.{did_you_mean(task, known)}"
                                 f" Tasks: {', '.join(known)}")

    @classmethod
    def build(cls, **values) -> "ReproduceConfig":
        values = nest(cls, values)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict) -> "ReproduceConfig":
        return cls.build(**{**flatten(read_yaml(path)), **flatten(overrides)})

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("load", "compute")}
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
        return {**out, "load": self.load.to_dict(), "compute": self.compute.to_dict()}

    def run_config(self, data: dict, folder: str = "run", **compute) -> RunConfig:
        options = self.compute
        if self.study == "followup":  # the follow-up's choices, unless given
            length = options.max_length or (FOLLOWUP_MAX_LENGTH if options.paper else None)  # else 2048 or the model's
            options = replace(options, ifd=True, cosine=True, max_length=length)
        return RunConfig(model=self.model, data=data, out=str(Path(self.out) / folder), limit=self.limit,
                         paper_data=self.paper_data, quiet=self.quiet, overwrite=self.overwrite, load=self.load,
                         compute=replace(options, **compute))


def grid(groups, tasks=None) -> dict[str, dict[str, str]]:
    """{task: {condition: source}}: every cell of the paper's grid for the groups (and tasks) asked."""
    out = {}
    for group in groups:
        for task in GROUPS[group]:
            if tasks and task not in tasks:
                continue
            cells = {}
            for style in STYLES[group]:
                for variant in ("", "@irrelevant"):
                    cells[f"{task}/{style}{variant}"] = f"paper:{task}/{style}{variant}"
            out[task] = cells
    return out


def reproduce(config: ReproduceConfig, log=print) -> Path:
    """Compute the grid, analyse every task, write the claims table and the replication report."""
    out = Path(config.out)
    notes: list[str] = []
    cells = grid(config.groups, config.tasks) if config.study == "paper" else followup_grid(config, notes)
    if not cells:
        raise InputError("no task selected; check --groups and --tasks" if config.study == "paper" else
                         "no follow-up data found; point --followup-data at <metric>/<pool>_10k_*_200.json")
    for note in notes:
        log(note)
    data = {c: s for task in cells.values() for c, s in task.items()}
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(out / "reproduce.yaml", config.to_dict())
    started = time.perf_counter()
    run(config.run_config(data), log=log)
    control = reinit_control(config, cells, log) if config.study == "followup" and config.reinit_control else None
    analyses, table = analyse_grid(out, cells, config, control, log)
    table.to_csv(out / "claims.csv", index=False)
    (out / "claims.md").write_text("".join(f"> {n}\n" for n in notes) + ("\n" if notes else "")
                                   + report.claims_markdown(table, list(cells)), encoding="utf-8")
    figure_paths = (group_figures(analyses, cells, config, out / "figures") if config.study == "paper"
                    else followup_figures(analyses, cells, out / "figures"))
    report.write_replication_report(out / "report.html", table, figure_paths, list(cells), model=config.model,
                                    limit=config.limit, paper=config.compute.paper, command=command_line(config),
                                    seconds=time.perf_counter() - started, notes=notes)
    log(f"wrote {out}/claims.csv, {out}/report.html and analysis/<task>/ for {len(cells)} tasks")
    return out


def analyse_grid(out: Path, cells: dict, config: ReproduceConfig, control: pd.DataFrame | None, log=print):
    """Every task analysed on its own (OUT/analysis/<task>/) from one load of the run, and the claims
    table of them all."""
    data = load_runs(out / "run")
    analyses = {}
    for task, conditions in cells.items():
        log(f"analysing {task}")
        analyses[task] = analyze(data, metrics=config.metrics, n_boot=config.bootstrap, seed=config.seed,
                                 conditions=list(conditions), log=lambda *a: None)
        if config.task_reports:
            analyses[task].write(out / "analysis" / task, formats=["png"], log=lambda *a: None)
        else:
            analyses[task].write_tables(out / "analysis" / task)
    return analyses, claim_table_of(data, config, analyses, control)


def followup_grid(config: ReproduceConfig, notes: list[str]) -> dict[str, dict[str, str]]:
    """{task: {condition: source}} of the follow-up study: '<metric>/<pool>' -> its high and low files,
    'reasoning' -> the R1 traces, 'gsm8k' -> the first paper's None / Detailed CoT; ``notes`` gets a line
    for every file the layout expects but the folder lacks."""
    from layergrad.data.followup import layout
    from layergrad.data.paper import paper_file

    found = layout(config.followup_data)
    notes += found.missing
    cells = {f"{metric}/{pool}": {f"{metric}/{pool}/{side}": str(path) for side, path in files.items()}
             for (metric, pool), files in found.pairs.items()}
    if found.reasoning:
        cells["reasoning"] = {f"reasoning/{name}": str(path) for name, path in found.reasoning.items()}
    try:
        for style in ("none", "detailed"):
            paper_file(f"gsm8k/{style}", config.paper_data)
        cells["gsm8k"] = {f"gsm8k/{style}": f"paper:gsm8k/{style}" for style in ("none", "detailed")}
    except InputError as exc:
        notes.append(f"the carry-over GSM8K None / Detailed CoT is left out: {exc}")
    if config.tasks:
        unknown = [t for t in config.tasks if t not in cells]
        if unknown:
            raise InputError(f"unknown task '{unknown[0]}'.{did_you_mean(unknown[0], cells)} Tasks: {', '.join(cells)}")
        cells = {t: c for t, c in cells.items() if t in config.tasks}
    return cells


def reinit_control(config: ReproduceConfig, cells: dict, log) -> pd.DataFrame:
    """The quality pairs once more with re-initialised weights (OUT/run-reinit): their claims table."""
    data = {c: s for task, conditions in cells.items() for c, s in conditions.items() if c.endswith(("/high", "/low"))}
    if not data:
        return None
    log("the random-weights control (--reinit 0) on the quality pairs")
    root = run(config.run_config(data, "run-reinit", reinit=0, ifd=False, cosine=False), log=log)
    return claim_table_of(root, config)


def claim_table_of(run, config: ReproduceConfig, analyses: dict | None = None,
                   control: pd.DataFrame | None = None) -> pd.DataFrame:
    """The claims of every task of a run (a directory or a Loaded) in one table (Holm over all of it),
    caveats from the tasks' controls."""
    from layergrad.analysis.analyze import claim_metrics

    data = load_runs(run)
    ok, stats, prompts, lengths = computed(data)
    nuclear = curves.sample_matrices(stats, "nuclear_norm")
    analyses = analyses or {}
    auroc = pd.concat([a.auroc for a in analyses.values()], ignore_index=True) if analyses else None
    increment = pd.concat([a.increment for a in analyses.values()], ignore_index=True) if analyses else None
    return claims.claims_table(nuclear, prompts, lengths, data.groups, config.bootstrap, config.seed,
                               separability=auroc, increment=increment, metrics=claim_metrics(stats, {"nuclear_norm": nuclear}),
                               control=control, scores=claims.baseline_scores(ok))


def write_yaml(path: Path, values: dict) -> None:
    import yaml

    from layergrad.runs.store import write_atomic

    write_atomic(path, yaml.safe_dump(values, sort_keys=False))


def group_figures(analyses: dict, cells: dict, config: ReproduceConfig, out: Path) -> list[Path]:
    """One figure per group in the paper's layout: a row per task, a panel per style, a line per module."""
    paths = []
    for group in config.groups:
        tasks = [t for t in GROUPS[group] if t in analyses]
        if not tasks:
            continue
        curve_rows = pd.concat([analyses[t].curves for t in tasks], ignore_index=True)
        rows = [(t, [f"{t}/{s}" for s in STYLES[group]]) for t in tasks]
        fig = figures.grid_panels(curve_rows, "nuclear_norm", rows, list(STYLES[group]),
                                  title=f"{group}: mean nuclear norm per layer and module (correct responses)")
        paths += [p for p in figures.save(fig, out, f"paper_{group}", ["png", "svg"]) if p.suffix == ".png"]
    return paths


def followup_figures(analyses: dict, cells: dict, out: Path) -> list[Path]:
    """The follow-up's layout: a row per (metric, pool) cell, high and low side by side, a line per module;
    one figure for the nuclear norm and one for the effective rank."""
    tasks = [t for t in cells if t in analyses and {f"{t}/high", f"{t}/low"} <= set(cells[t])]
    if not tasks:
        return []
    curve_rows = pd.concat([analyses[t].curves for t in tasks], ignore_index=True)
    paths = []
    for metric in ("nuclear_norm", "effective_rank"):
        if metric not in set(curve_rows.metric):
            continue
        fig = figures.grid_panels(curve_rows, metric, [(t, [f"{t}/high", f"{t}/low"]) for t in tasks], ["high", "low"],
                                  title=f"High vs low quality: mean {figures.label(metric)} per layer and module")
        paths += [p for p in figures.save(fig, out, f"followup_{metric}", ["png", "svg"]) if p.suffix == ".png"]
    return paths


def command_line(config: ReproduceConfig) -> str:
    followup = config.study == "followup"
    parts = ["layergrad reproduce --study followup" if followup else "layergrad reproduce", f"--model {config.model}"]
    if not followup:
        parts.append(f"--groups {','.join(config.groups)}")
    if config.tasks:
        parts.append(f"--tasks {','.join(config.tasks)}")
    if config.limit:
        parts.append(f"--limit {config.limit}")
    parts += command_words(config.load) + command_words(config.compute)
    return " ".join(parts + ["--followup-data DIR" if followup else "--paper-data DIR", f"--out {config.out}"])
