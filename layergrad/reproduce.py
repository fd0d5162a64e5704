"""``layergrad reproduce``: the paper's whole grid on one model, its claims per task, one report.

    layergrad reproduce --model smollm2-135m-instruct --paper-data DIR --limit 20 --out runs/repro

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
from dataclasses import dataclass, field, fields
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

GROUPS = {"cot": COT_TASKS, "math": tuple(MATH_TASKS), "wiki": ("wiki",)}
STYLES = {"cot": ("none", "simplified", "detailed"), "math": ("simplified", "detailed"), "wiki": tuple(WIKI)}


@dataclass(frozen=True)
class ReproduceConfig:
    """Everything ``reproduce`` needs; written to ``OUT/reproduce.yaml``. ``load`` and ``compute`` are
    the declared option objects every run has (their fields may be given flat, as on the CLI)."""

    model: str = "smollm2-135m-instruct"
    out: str = "runs/reproduce"
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

    def run_config(self, data: dict) -> RunConfig:
        return RunConfig(model=self.model, data=data, out=str(Path(self.out) / "run"), limit=self.limit,
                         paper_data=self.paper_data, quiet=self.quiet, overwrite=self.overwrite, load=self.load,
                         compute=self.compute)


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
    cells = grid(config.groups, config.tasks)
    if not cells:
        raise InputError("no task selected; check --groups and --tasks")
    data = {c: s for task in cells.values() for c, s in task.items()}
    run_config = config.run_config(data)
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(out / "reproduce.yaml", config.to_dict())
    started = time.perf_counter()
    run(run_config, log=log)
    analyses = {}
    for task, conditions in cells.items():
        log(f"analysing {task}")
        analyses[task] = analyze(out / "run", metrics=config.metrics, n_boot=config.bootstrap, seed=config.seed,
                                 conditions=list(conditions), log=lambda *a: None)
        if config.task_reports:
            analyses[task].write(out / "analysis" / task, formats=["png"], log=lambda *a: None)
        else:
            analyses[task].write_tables(out / "analysis" / task)
    table = replication_claims(out / "run", analyses, config)
    table.to_csv(out / "claims.csv", index=False)
    (out / "claims.md").write_text(report.claims_markdown(table, list(cells)), encoding="utf-8")
    figure_paths = group_figures(analyses, cells, config, out / "figures")
    report.write_replication_report(out / "report.html", table, figure_paths, list(cells), model=config.model,
                                    limit=config.limit, paper=config.compute.paper, command=command_line(config),
                                    seconds=time.perf_counter() - started)
    log(f"wrote {out}/claims.csv, {out}/report.html and analysis/<task>/ for {len(cells)} tasks")
    return out


def write_yaml(path: Path, values: dict) -> None:
    import yaml

    from layergrad.runs.store import write_atomic

    write_atomic(path, yaml.safe_dump(values, sort_keys=False))


def replication_claims(run_dir: Path, analyses: dict, config: ReproduceConfig) -> pd.DataFrame:
    """The claims of every task in one table (Holm over all of it), caveats from each task's controls."""
    data = load_runs(run_dir)
    _, stats, prompts, lengths = computed(data)
    nuclear = curves.sample_matrices(stats, "nuclear_norm")
    auroc = pd.concat([a.auroc for a in analyses.values()], ignore_index=True)
    increment = pd.concat([a.increment for a in analyses.values()], ignore_index=True)
    return claims.claims_table(nuclear, prompts, lengths, data.groups, config.bootstrap, config.seed,
                               separability=auroc, increment=increment)


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


def command_line(config: ReproduceConfig) -> str:
    parts = ["layergrad reproduce", f"--model {config.model}", f"--groups {','.join(config.groups)}"]
    if config.tasks:
        parts.append(f"--tasks {','.join(config.tasks)}")
    if config.limit:
        parts.append(f"--limit {config.limit}")
    parts += command_words(config.load) + command_words(config.compute)
    return " ".join(parts + ["--paper-data DIR", f"--out {config.out}"])
