"""Runs -> groups: the conditions of run directories (or ``compute`` DataFrames), with the derived
metrics added (derived.py), and the pairs to compare.

A *group* is one condition of one run (named ``condition``, or ``run:condition`` when several
runs are analysed), with its *attributes* — what the condition is (task, style, variant; metric,
pool, quality; or a study's own): from run.json, else from the run's sources (data/attributes.py), or
from a ``compute`` DataFrame's attrs. ``analyze`` compares the conditions of each run with each other
(``within_run_pairs``); ``compare`` the same condition across runs (``across_run_pairs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import pandas as pd

from layergrad.analysis.derived import with_derived_metrics
from layergrad.errors import InputError
from layergrad.runs.store import load_run
from layergrad.schema import expert_rows, layer_rows


@dataclass
class Loaded:
    """Stats and samples of every run, with a ``group`` column; groups in run order."""

    stats: pd.DataFrame  # one row per (sample, layer, kind): a MoE layer's experts as their summary rows
    samples: pd.DataFrame
    groups: list[str]
    manifests: dict[str, dict]
    runs: dict[str, list[str]] = field(default_factory=dict)  # run label -> its groups
    attributes: dict[str, dict] = field(default_factory=dict)  # group -> what its condition is
    experts: pd.DataFrame | None = None  # the rows of single MoE experts (schema.expert_rows), with ``group``

    def only(self, groups: list[str]) -> "Loaded":
        """The same runs restricted to ``groups`` (e.g. one task of a reproduce grid, loaded once)."""
        keep = set(groups)
        return Loaded(self.stats[self.stats.group.isin(keep)], self.samples[self.samples.group.isin(keep)],
                      [g for g in self.groups if g in keep], self.manifests,
                      {r: [g for g in gs if g in keep] for r, gs in self.runs.items()},
                      {g: a for g, a in self.attributes.items() if g in keep},
                      None if self.experts is None else self.experts[self.experts.group.isin(keep)])

    def of_run(self, label: str) -> dict[str, dict]:
        """{group: attributes} of one run's groups, in run order."""
        return {g: self.attributes.get(g, {}) for g in self.runs.get(label, [])}

    def partners(self) -> dict[str, str]:
        """{group with irrelevant responses: the group with the correct ones}: the same condition in every
        attribute but ``variant`` (the paper's correct vs irrelevant), within one run."""
        out = {}
        for groups in self.runs.values():
            for g in groups:
                attrs = self.attributes.get(g, {})
                if attrs.get("variant") == "irrelevant":
                    want = {**attrs, "variant": "correct"}
                    match = [h for h in groups if self.attributes.get(h) == want]
                    if match:
                        out[g] = match[0]
        return out


def load_runs(runs, conditions: list[str] | None = None) -> Loaded:
    """Run directories or ``compute`` DataFrames (one or a list) -> one Loaded with group names;
    ``conditions`` keeps only those conditions of every run; an already ``Loaded`` one is restricted."""
    if isinstance(runs, Loaded):
        return runs.only(conditions) if conditions is not None else runs
    runs = list(runs) if isinstance(runs, (list, tuple)) else [runs]
    labels = run_labels(runs)
    stats, experts, samples, manifests, order_of, groups, attributes = [], [], [], {}, {}, [], {}
    for run, run_label in zip(runs, labels):
        s, m, manifest = frame_run(run) if isinstance(run, pd.DataFrame) else load_run(run_directory(run))
        known = condition_attributes(manifest)
        if conditions is not None:
            s, m = s[s.condition.isin(conditions)], m[m.condition.isin(conditions)]
        order = list(manifest.get("config", {}).get("data", {})) or list(dict.fromkeys(m.condition))
        order = [c for c in order if c in set(s.condition)] + sorted(set(s.condition) - set(order))
        name = (lambda c: c) if len(runs) == 1 else (lambda c, r=run_label: f"{r}:{c}")
        s = s.assign(group=s.condition.map(name), run=run_label)
        m = m.assign(group=m.condition.map(name), run=run_label)
        experts.append(expert_rows(s))
        stats.append(with_derived_metrics(layer_rows(s), m))
        samples.append(m)
        manifests[run_label] = manifest
        order_of[run_label] = [name(c) for c in order]
        groups += order_of[run_label]
        attributes.update({name(c): known.get(c, {}) for c in order})
    stats = pd.concat(stats, ignore_index=True)
    if stats.empty:
        raise InputError(f"no statistics in {', '.join(map(str, labels))}: nothing was computed")
    experts = pd.concat(experts, ignore_index=True)
    return Loaded(stats, pd.concat(samples, ignore_index=True), groups, manifests, order_of, attributes,
                  experts if len(experts) else None)


def condition_attributes(manifest: dict) -> dict[str, dict]:
    """{condition: attributes}: as the run recorded them, else as its sources imply (runs before attributes)."""
    from layergrad.data.attributes import attributes_of

    recorded = manifest.get("attributes") or {}
    sources = manifest.get("config", {}).get("data", {}) or {}
    return {c: dict(recorded.get(c) or attributes_of(str(src))) for c, src in {**sources, **recorded}.items()}


def run_directory(path) -> Path:
    """A run directory, or the run inside a ``layergrad reproduce`` output folder."""
    path = Path(path)
    inner = path / "run"
    return inner if not (path / "stats.parquet").exists() and (inner / "stats.parquet").exists() else path


def frame_run(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(stats, samples, manifest) of a DataFrame returned by ``layergrad.compute``."""
    if not {"sample_id", "condition", "layer", "module"} <= set(frame.columns):
        raise InputError("a DataFrame to analyse must be one returned by layergrad.compute (sample_id, condition, "
                         "layer, module and statistics columns)")
    samples = frame.attrs.get("samples")
    if samples is None:  # attrs lost (e.g. after a concat): every sample counts as computed
        samples = frame[["sample_id", "condition"]].drop_duplicates().assign(
            status="ok", loss=float("nan"), n_response_tokens=0, prompt=None, response=None)
    conditions = frame.attrs.get("conditions") or list(dict.fromkeys(frame.condition))
    manifest = {"model": frame.attrs.get("model", {}), "config": {"data": {c: "" for c in conditions}},
                "attributes": frame.attrs.get("attributes", {})}
    return frame, samples, manifest


def run_labels(runs: list) -> list[str]:
    names = ["frame" if isinstance(r, pd.DataFrame) else Path(r).resolve().name for r in runs]
    return names if len(set(names)) == len(names) else [f"{n}-{i}" for i, n in enumerate(names, 1)]


def computed(data: Loaded) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    """(samples with status ok, their stats rows, {group: prompt by sample_id}, {group: response tokens})."""
    ok = data.samples[data.samples.status == "ok"]
    stats = of_samples(data.stats, ok)
    prompts = {g: rows.set_index("sample_id")["prompt"] for g, rows in ok.groupby("group")}
    lengths = {g: rows.set_index("sample_id")["n_response_tokens"] for g, rows in ok.groupby("group")}
    return ok, stats, prompts, lengths


def of_samples(frame: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` whose (group, sample_id) is one of ``samples``'."""
    keys = pd.MultiIndex.from_frame(samples[["group", "sample_id"]])
    return frame[pd.MultiIndex.from_frame(frame[["group", "sample_id"]]).isin(keys)]


def within_run_pairs(data: Loaded) -> list[tuple[str, str]]:
    """Correct vs irrelevant responses of the same condition first (Loaded.partners), then every other pair
    in run order."""
    partner_of = data.partners()
    pairs = []
    for groups in data.runs.values():
        irrelevant = [(partner_of[g], g) for g in groups if g in partner_of]
        irrelevant.sort(key=lambda p: groups.index(p[0]))
        rest = [p for p in combinations(groups, 2) if p not in irrelevant and p[::-1] not in irrelevant]
        pairs += irrelevant + rest
    return pairs


def across_run_pairs(data: Loaded) -> list[tuple[str, str]]:
    """The same condition in every two runs."""
    pairs = []
    for (ra, ga), (rb, gb) in combinations(data.runs.items(), 2):
        conditions_b = {g.split(":", 1)[1]: g for g in gb}
        pairs += [(g, conditions_b[g.split(":", 1)[1]]) for g in ga if g.split(":", 1)[1] in conditions_b]
    return pairs
