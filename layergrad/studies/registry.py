"""The extension points of a study: claim kinds, caveats and studies, each a registry with one signature.

- ``@claim_kind(name, needs=..., options=<dataclass>, between_runs=..., test=..., describe=...)`` registers
  a claim kind's statistic ``(ctx, spec, on: Where, row) -> dict | None`` (analysis/claims/kinds.py holds the
  built-in ones); its options are a dataclass checked when a study is read;
- ``@caveat(name, options=<dataclass>)`` registers what a claim row's reader must keep in mind,
  ``(spec, row, controls, on) -> str`` (analysis/claims/caveats.py);
- ``register_study(name, build)`` registers a built-in study: ``build(**choices) -> Study``, the Study carrying
  its ``StudyHooks`` (figures, the random-weights control, compute defaults, the command's words).

The built-in claim kinds and caveats live in the analysis stage and are imported on the first lookup.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Callable

from layergrad.errors import InputError, did_you_mean
from layergrad.registry import Registry

CLAIM_KINDS = Registry("claim kind", plugins=("layergrad.analysis.claims.kinds",))
CAVEATS = Registry("caveat", plugins=("layergrad.analysis.claims.caveats",))
STUDIES = Registry("study", plugins=("layergrad.studies.paper", "layergrad.studies.followup"))


@dataclass(frozen=True)
class ClaimOptions:
    """A claim kind's (or caveat's) options: subclass it with the keys it reads, each with its default
    (a key without a default is required)."""

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def required(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]


@dataclass(frozen=True)
class NoOptions(ClaimOptions):
    """A kind or caveat that reads no options."""


@dataclass(frozen=True)
class ClaimKind:
    """A registered claim kind: its statistic for one row and what it needs."""

    name: str
    statistic: Callable  # (ctx, spec, on: Where, row) -> {effect, ci_low, ci_high, p, effect_kind, n} | None
    needs: Callable  # spec -> [selector]: the conditions a cell (each run's, between runs) must have
    options: type = NoOptions
    rows: Callable | None = None  # (ctx, spec, cell) -> row labels; default: the modules of a and b
    test: str = "bootstrap"  # the test's words in a claim's definition
    between_runs: bool = False  # compares a cell of one run with the same cell of another
    compare: str = "two values of one attribute"  # what ``compare`` takes, for the docs
    describe: str = ""  # what the effect is, in words


@dataclass(frozen=True)
class Caveat:
    """A registered caveat: ``(spec, row, controls, on) -> str``."""

    name: str
    write: Callable
    options: type = NoOptions


def claim_kind(name: str, *, needs: Callable, options: type = NoOptions, rows: Callable | None = None,
               test: str = "bootstrap", between_runs: bool = False, compare: str = "two values of one attribute",
               describe: str = ""):
    """Register the decorated function as the statistic of claim kind ``name`` (a taken name is refused)."""
    return CLAIM_KINDS.decorator(name, lambda f: ClaimKind(name, f, needs, options, rows, test, between_runs, compare,
                                                           describe or (f.__doc__ or "").split("\n")[0]))


def caveat(name: str, *, options: type = NoOptions):
    """Register the decorated function as caveat ``name``."""
    return CAVEATS.decorator(name, lambda f: Caveat(name, f, options))


def parse_options(kind: str, caveat_name: str, values: dict | None, fail=None) -> tuple:
    """(kind options, caveat options) from a claim's ``options`` mapping; an unknown key or a missing required
    one is a one-line error naming it (``fail(key, message)`` raises it, with the study file's line)."""
    def refuse(key, message):
        if fail:
            fail(key, message)
        raise InputError(f"options.{key}: {message}" if key else message)

    values = dict(values or {})
    kind_cls, caveat_cls = CLAIM_KINDS.get(kind).options, CAVEATS.get(caveat_name).options
    known = kind_cls.keys() + [k for k in caveat_cls.keys() if k not in kind_cls.keys()]
    for key in values:
        if key not in known:
            refuse(key, f"unknown option '{key}' of a {kind} claim with caveat {caveat_name}."
                        f"{did_you_mean(str(key), known)} Options: {', '.join(known) or 'none'}")
    for key in kind_cls.required():
        if key not in values:
            refuse(None, f"a {kind} claim needs options.{key}")
    return (kind_cls(**{k: v for k, v in values.items() if k in kind_cls.keys()}),
            caveat_cls(**{k: v for k, v in values.items() if k in caveat_cls.keys()}))


@dataclass(frozen=True)
class GridFigure:
    """A figure a study adds, as data: a row per (label, conditions), a panel per column, a line per module."""

    file: str
    metric: str
    rows: list  # [(row label, [condition per column])]
    columns: list  # the column titles
    title: str  # '{metric}' stands for the metric's words


def no_figures(study, analysed: list[str], config) -> list[GridFigure]:
    return []


def every_condition(study) -> list[str]:
    return [c.name for c in study.conditions]


def same_options(options):
    return options


def no_words(config) -> list[str]:
    return []


@dataclass(frozen=True)
class StudyHooks:
    """What a study adds to ``reproduce`` beyond its conditions and claims (the defaults suit a study file)."""

    figures: Callable = no_figures  # (study, analysed cells, config) -> [GridFigure]
    control: Callable = every_condition  # (study) -> the conditions run again under random weights
    reinit: bool = False  # whether the random-weights control runs unless asked
    compute: Callable = same_options  # (ComputeOptions) -> the options its conditions are computed with
    words: Callable = no_words  # (config) -> the command's words that choose the study's cells
    data_flag: str = ""  # the data folder option a replayed command names (e.g. '--paper-data DIR')


@dataclass(frozen=True)
class BuiltinStudy:
    """A registered study: how to build it, and its claims and labels (which ``analyze`` checks on any run)."""

    name: str
    build: Callable  # (groups=, tasks=, paper_data=, followup_data=) -> Study
    claims: tuple = ()
    labels: dict | None = None


def register_study(name: str, build: Callable, *, claims: tuple = (), labels: dict | None = None,
                   replace: bool = False) -> BuiltinStudy:
    """Register a built-in study by name (``--study NAME``); ``build`` takes the keyword choices it needs."""
    return STUDIES.register(name, BuiltinStudy(name, build, tuple(claims), labels), replace=replace)
