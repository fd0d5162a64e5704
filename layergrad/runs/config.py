"""One configuration object for Python, YAML and the CLI (CLI > file > defaults): ``RunConfig`` for a run,
``ReproduceConfig`` for a study (``layergrad reproduce``), which holds a RunConfig.

``RunConfig`` holds the run's own settings and, rather than copies of them, the two declared option
objects: ``load`` (models.LoadOptions) and ``compute`` (engine.options.ComputeOptions). In YAML and
in ``RunConfig.build`` their fields may also be given flat (``paper: true`` = ``compute: {paper:
true}``), as older run directories wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from layergrad.declare import check_fields, fingerprint, option
from layergrad.engine.options import ComputeOptions
from layergrad.errors import InputError, did_you_mean
from layergrad.models import LoadOptions

DEFAULT_METRICS = ("nuclear_norm", "sigma1_ratio", "effective_rank")  # what an analysis covers unless told
RENAMED = {"segments": "solve_per"}  # keys older run directories wrote
RETIRED = ("overlap",)  # keys that no longer mean anything: read and ignored
PARTS = {"load": LoadOptions, "compute": ComputeOptions}


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; written to ``config.yaml`` so the run can be replayed exactly."""

    model: str = option("smollm2-135m-instruct", "Alias, local folder, .gguf file or hub id.")
    data: dict = field(default_factory=dict, metadata={"help": "condition name -> source"})
    out: str = option("runs/run", "Run directory.", neutral=True)
    limit: int | None = option(None, "A random subsample of N samples of each condition, seeded, in source order (the "
                               "same positions for sources of the same size: paired conditions stay paired).",
                               neutral=True, positive=True)
    head: int | None = option(None, "The first N samples of each condition instead (a metric-sorted file's first N "
                              "are its extremes).", neutral=True, positive=True)
    subsample_seed: int = option(0, "Seed of --limit's subsample.", neutral=True)
    paper_data: str | None = option(None, "Local copy of the paper's data/ folder.")
    quiet: bool = option(False, "No progress output and no summary.", neutral=True, flag="--quiet -q")
    overwrite: bool = option(False, "Replace a run directory with another config.", neutral=True)
    load: LoadOptions = field(default_factory=LoadOptions)
    compute: ComputeOptions = field(default_factory=ComputeOptions)

    def __post_init__(self):
        check_fields(self)
        if not isinstance(self.data, dict):
            raise InputError("data must map condition names to sources, e.g. {none: paper:gsm8k/none}")
        if self.limit is not None and self.head is not None:
            raise InputError("--limit (a random subsample) and --head (the first N) exclude each other; pass one")

    def subsample(self):
        """The samples taken of each condition (data/samples.Subsample)."""
        from layergrad.data.samples import Subsample

        return Subsample(self.head if self.head is not None else self.limit, self.head is not None,
                         self.subsample_seed)

    @classmethod
    def build(cls, **values) -> "RunConfig":
        """From flat or nested keys (a load or compute field may be given at the top level)."""
        return cls(**nest(cls, values))

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        return cls.build(**values)

    def with_values(self, **values) -> "RunConfig":
        """A copy with some keys changed (flat or nested, as in ``build``)."""
        return RunConfig.build(**{**flatten(self.to_dict()), **flatten(values)})

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in PARTS}
        return {**out, **{name: getattr(self, name).to_dict() for name in PARTS}}

    def result_fingerprint(self) -> dict:
        """The settings that determine the numbers (what a resumed run must share), flat."""
        values = fingerprint(self)
        for name in PARTS:
            values.pop(name, None)
            values.update(getattr(self, name).fingerprint())
        return values

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict | None = None) -> "RunConfig":
        """Read a YAML file; ``overrides`` (from the CLI, flat or nested) win over its values."""
        return cls.build(**{**flatten(read_yaml(path)), **flatten(overrides or {})})


@dataclass(frozen=True)
class ReproduceConfig:
    """Everything ``reproduce`` needs; written to ``OUT/reproduce.yaml``. Its own options are declared here
    once (Python, YAML and CLI); ``run`` holds a run's (model, limit, data folders, load and compute options)."""

    study: str | dict = option("paper", "paper | followup | a study file (.yaml) of your own (Python: also a dict).")
    out: str = option("runs/reproduce", "Output folder.", neutral=True)
    followup_data: str | None = option(None, "The follow-up's data folder (<metric>/<pool>_10k_{highest,lowest}_200"
                                       ".json, reasoning/); else $LAYERGRAD_FOLLOWUP_DATA, else downloaded once.")
    reinit_control: bool | None = option(None, "The claims also under random weights (--reinit 0), quoted in their "
                                         "caveats.  [default: on for followup (its quality pairs), off otherwise]",
                                         flag="--reinit-control/--no-reinit-control")
    groups: tuple = option(("cot", "math", "wiki"), "paper: cot, math, wiki (comma-separated).")
    tasks: tuple | None = option(None, "Only these tasks, e.g. gsm8k,aqua,math-algebra,wiki (followup: "
                                 "ifd_gpt2/wiz,reasoning).")
    metrics: tuple = option(DEFAULT_METRICS, "Comma-separated metrics to analyse.")
    bootstrap: int = option(1000, "Bootstrap resamples for the CIs (at least 10).", positive=True)
    seed: int = option(0, "Seed of the resampling.")
    draws: int = option(20, "Random halves of the prompts the claims are judged on again: each verdict's stability "
                        "(0: none).")
    task_reports: bool = option(True, "Figures and report.html for every cell too (the CSVs are always written).",
                                flag="--task-reports/--no-task-reports")
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        check_fields(self)
        if self.bootstrap < 10:
            raise InputError(f"bootstrap must be at least 10, got {self.bootstrap}")
        if not isinstance(self.draws, int) or isinstance(self.draws, bool) or self.draws < 0:
            raise InputError(f"draws must be 0 or more, got {self.draws!r}")

    @classmethod
    def build(cls, **values) -> "ReproduceConfig":
        """From flat keys (as on the CLI and in older reproduce.yaml files) or nested ``run``/``load``/``compute``."""
        values = flatten({**values.pop("run", {}), **values})
        own = {f.name for f in fields(cls)} - {"run"}
        mine = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in own}
        return cls(**mine, run=RunConfig.build(**{k: v for k, v in values.items() if k not in own}))

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict) -> "ReproduceConfig":
        return cls.build(**{**flatten(read_yaml(path)), **flatten(overrides)})

    def to_dict(self) -> dict:
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "run"}
        own = {k: list(v) if isinstance(v, tuple) else v for k, v in own.items()}
        return {**own, **{k: v for k, v in self.run.to_dict().items() if k not in ("out", "data")}}

    def reinit_for(self, hooks) -> bool:
        """Whether the random-weights control runs: as asked, else the study's default (its ``hooks``)."""
        return self.reinit_control if self.reinit_control is not None else hooks.reinit

    def run_config(self, data: dict, folder: str = "run", hooks=None, **compute) -> RunConfig:
        """The RunConfig of some of the study's conditions in ``OUT/folder``: the study's compute defaults
        (``hooks.compute``) unless given, then ``compute``'s overrides."""
        options = hooks.compute(self.run.compute) if hooks is not None else self.run.compute
        return replace(self.run, data=data, out=str(Path(self.out) / folder), compute=replace(options, **compute))


def flatten(values: dict) -> dict:
    """Nested load/compute sections lifted to the top (their field names are unique), old keys renamed."""
    flat = {}
    for key, value in values.items():
        if key in PARTS and isinstance(value, dict):
            flat.update(flatten(value))
        elif key not in RETIRED:
            flat[RENAMED.get(key, key)] = value
    return flat


def nest(cls, values: dict) -> dict:
    """Flat or nested keys -> ``cls``'s keywords, the load and compute parts built (``cls`` holds
    either or both); an unknown key is a one-line InputError naming the closest."""
    own = {f.name for f in fields(cls)}
    parts = {name: {} for name in PARTS if name in own}
    top = {}
    for key, value in flatten(values).items():
        owner = next((name for name in parts if key in field_names(PARTS[name])), None)
        if owner:
            parts[owner][key] = value
        elif key in own and key not in parts:
            top[key] = value
        else:
            known = sorted((own - set(parts)) | {k for name in parts for k in field_names(PARTS[name])})
            raise InputError(f"unknown config key '{key}'.{did_you_mean(key, known)}")
    return {**top, **{name: PARTS[name](**given) for name, given in parts.items()}}


def field_names(cls) -> list[str]:
    return [f.name for f in fields(cls)]


def read_yaml(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise InputError(f"{path}: malformed YAML{where}; fix the file or pass options on the command line") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a mapping of option names to values")
    return values


def parse_data_options(items) -> dict:
    """['none=paper:gsm8k/none', 'x.json'] -> {'none': 'paper:gsm8k/none', 'x': 'x.json'}."""
    data = {}
    for item in items:
        name, sep, source = item.partition("=")
        if not sep:
            name, source = Path(item).stem.split("@")[0].replace("/", "-"), item
        if not name or not source:
            raise InputError(f"--data expects NAME=SOURCE, got '{item}'")
        if name in data:
            raise InputError(f"condition '{name}' is given twice in --data")
        data[name] = source
    return data
