"""One configuration object for Python, YAML and the CLI (CLI > file > defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from layergrad.errors import InputError, did_you_mean

ROUTES = ("auto", "core", "dense", "reference")
# keys that change no number in the results: a resumed run may differ in them
RESULT_NEUTRAL = ("batch_size", "batch_tokens", "limit", "device", "device_map", "quiet", "out", "overwrite", "solver",
                  "overlap", "segments", "threads")
SOLVERS = ("auto", "torch", "cupy", "host")
SEGMENTATIONS = ("auto", "sample", "batch")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; written to ``config.yaml`` so the run can be replayed exactly."""

    model: str = field(default="smollm2-135m-instruct", metadata={"help": "alias, folder, .gguf or hub id"})
    data: dict = field(default_factory=dict, metadata={"help": "condition name -> source"})
    out: str = field(default="runs/run", metadata={"help": "run directory"})
    modules: str | None = field(default=None, metadata={
        "help": "all | attn | mlp | kinds | re:<regex>; unset: all (attn with paper), an explicit value always wins"})
    paper: bool = field(default=False, metadata={"help": "reproduce the original script's choices"})
    limit: int | None = field(default=None, metadata={"help": "first N samples of each condition"})
    batch_size: int | None = None
    batch_tokens: int | None = None
    dtype: str = "float32"
    device: str = "auto"
    device_map: str | None = field(default=None, metadata={"help": "e.g. 'auto': spread a large model over GPUs"})
    max_length: int | None = None
    route: str = "auto"
    solver: str = field(default="auto", metadata={"help": "eigensolver: auto | torch | cupy | host"})
    overlap: bool | None = field(default=None, metadata={"help": "finish batch k while k+1 runs (unset: off)"})
    segments: str = field(default="auto", metadata={"help": "auto | sample | batch: spectral problem per sample or batch"})
    threads: int | None = field(default=None, metadata={"help": "CPU threads (unset: affinity, cgroup, OMP_NUM_THREADS)"})
    spectrum: bool = False
    cosine: bool = field(default=False, metadata={"help": "adjacent-layer gradient cosine (cosine_next)"})
    append_eos: bool = True
    system_prompt: str | None = None
    chat: bool | None = field(default=None, metadata={"help": "force chat template on/off"})
    trust_remote_code: bool = False
    paper_data: str | None = None
    quiet: bool = False
    overwrite: bool = False

    def __post_init__(self):
        if self.route not in ROUTES:
            raise InputError(f"unknown route '{self.route}'.{did_you_mean(self.route, ROUTES)} "
                             f"Use one of: {', '.join(ROUTES)}")
        for name, choices in (("solver", SOLVERS), ("segments", SEGMENTATIONS)):
            value = getattr(self, name)
            if value not in choices:
                raise InputError(f"unknown {name} '{value}'.{did_you_mean(str(value), choices)} "
                                 f"Use one of: {', '.join(choices)}")
        for name in ("limit", "batch_size", "batch_tokens", "max_length", "threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.data, dict):
            raise InputError("data must map condition names to sources, e.g. {none: paper:gsm8k/none}")

    def to_dict(self) -> dict:
        return asdict(self)

    def result_fingerprint(self) -> dict:
        """The settings that determine the numbers (what a resumed run must share)."""
        values = {k: v for k, v in self.to_dict().items() if k not in RESULT_NEUTRAL}
        values["modules"] = self.modules or ("attn" if self.paper else "all")  # unset = the mode's default
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise InputError(f"unknown config key '{key}'.{did_you_mean(key, known)}")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict | None = None) -> "RunConfig":
        """Read a YAML file; ``overrides`` (from the CLI) win over its values."""
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
        return cls.from_dict({**values, **(overrides or {})})


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
