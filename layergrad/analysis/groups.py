"""Runs -> groups: the conditions of one or several run directories, and the pairs to compare.

A *group* is one condition of one run (named ``condition``, or ``run:condition`` when several
runs are analysed). ``analyze`` compares the conditions of each run with each other
(``within_run_pairs``); ``compare`` the same condition across runs (``across_run_pairs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import pandas as pd

from layergrad.errors import InputError
from layergrad.runs.store import load_run


@dataclass
class Loaded:
    """Stats and samples of every run, with a ``group`` column; groups in run order."""

    stats: pd.DataFrame
    samples: pd.DataFrame
    groups: list[str]
    manifests: dict[str, dict]
    runs: dict[str, list[str]] = field(default_factory=dict)  # run label -> its groups


def load_runs(paths: list[str]) -> Loaded:
    labels = run_labels(paths)
    stats, samples, manifests, runs, groups = [], [], {}, {}, []
    for path, run_label in zip(paths, labels):
        s, m, manifest = load_run(path)
        order = list(manifest.get("config", {}).get("data", {})) or list(dict.fromkeys(m.condition))
        order = [c for c in order if c in set(s.condition)] + sorted(set(s.condition) - set(order))
        name = (lambda c: c) if len(paths) == 1 else (lambda c, r=run_label: f"{r}:{c}")
        s = s.assign(group=s.condition.map(name), run=run_label)
        m = m.assign(group=m.condition.map(name), run=run_label)
        stats.append(s)
        samples.append(m)
        manifests[run_label] = manifest
        runs[run_label] = [name(c) for c in order]
        groups += runs[run_label]
    stats = pd.concat(stats, ignore_index=True)
    if stats.empty:
        raise InputError(f"no statistics in {', '.join(paths)}: nothing was computed")
    return Loaded(stats, pd.concat(samples, ignore_index=True), groups, manifests, runs)


def run_labels(paths: list[str]) -> list[str]:
    names = [Path(p).resolve().name for p in paths]
    return names if len(set(names)) == len(names) else [f"{n}-{i}" for i, n in enumerate(names, 1)]


def within_run_pairs(data: Loaded) -> list[tuple[str, str]]:
    """X vs X@irrelevant first (the paper's correct vs irrelevant), then every other pair in run order."""
    pairs = []
    for groups in data.runs.values():
        irrelevant = [(g, f"{g}@irrelevant") for g in groups if f"{g}@irrelevant" in groups]
        rest = [p for p in combinations(groups, 2) if p not in irrelevant]
        pairs += irrelevant + rest
    return pairs


def across_run_pairs(data: Loaded) -> list[tuple[str, str]]:
    """The same condition in every two runs."""
    pairs = []
    for (ra, ga), (rb, gb) in combinations(data.runs.items(), 2):
        conditions_b = {g.split(":", 1)[1]: g for g in gb}
        pairs += [(g, conditions_b[g.split(":", 1)[1]]) for g in ga if g.split(":", 1)[1] in conditions_b]
    return pairs
