"""What a claim's statistic reads, and how conditions are found: by their attributes, never their names.

``Context`` holds the per-sample layer matrices of every metric, the prompts (for pairing) and the
resampling generator. ``Cell`` is the set of groups a claim looks at together (one value of its
``per`` attribute, e.g. one task) with their attributes; ``Cell.find(selector)`` is the function that
maps attributes to groups: the group(s) whose attributes match, pooled into one when several do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from layergrad.analysis.significance import MIN_PAIRED, paired_index


@dataclass
class Context:
    """Per-sample matrices (``metrics``: metric -> {(group, module): samples x layers}), prompts by group,
    the bootstrap count and the generator every statistic draws from (in table order); ``arrangements``: the
    generator of the randomization tests' random arrangements (apart, so that the intervals do not depend on
    which test a row uses)."""

    metrics: dict
    prompts: dict
    n_boot: int
    rng: np.random.Generator
    unavailable: dict = field(default_factory=dict)  # group -> why it has no values (a dead cell of a study)
    pooled: set = field(default_factory=set)  # the names of groups made by pool() (not conditions of the run)
    lengths: dict = field(default_factory=dict)  # group -> response tokens by sample_id (length-aware kinds)
    arrangements: np.random.Generator = field(default_factory=lambda: np.random.default_rng(1))

    def of(self, metric: str) -> dict:
        return self.metrics.get(metric, {})

    def pair(self, a: str, b: str, module: str, metric: str = "nuclear_norm", paired: str = "auto"):
        """(rows of a, rows of b, paired) of one metric and module, or None when either is missing;
        ``paired`` auto: paired when the two share prompts, 'no': never."""
        matrices = self.of(metric)
        if (a, module) not in matrices or (b, module) not in matrices:
            return None
        ma, mb = matrices[(a, module)], matrices[(b, module)]
        pairing = None if paired == "no" or a not in self.prompts or b not in self.prompts else paired_index(
            self.prompts[a].reindex(ma.index).dropna(), self.prompts[b].reindex(mb.index).dropna())
        if pairing:
            return ma.loc[[p[0] for p in pairing]], mb.loc[[p[1] for p in pairing]], True
        return ma, mb, False

    def aligned(self, groups: list[str], module: str, metric: str = "nuclear_norm") -> list[pd.DataFrame] | None:
        """The rows of several groups on the prompts all of them have (once each), in one order: the units of a
        paired test over more than two conditions; None when they do not pair up (as ``paired_index``)."""
        matrices = self.of(metric)
        if any((g, module) not in matrices or g not in self.prompts for g in groups):
            return None
        by_prompt = []
        for g in groups:
            prompts = self.prompts[g].reindex(matrices[(g, module)].index).dropna()
            prompts = prompts[~prompts.duplicated(keep=False)]
            by_prompt.append(pd.Series(prompts.index, index=prompts.values))
        shared = by_prompt[0].index
        for other in by_prompt[1:]:
            shared = shared.intersection(other.index, sort=False)
        if len(shared) < MIN_PAIRED or len(shared) < 0.5 * min(len(matrices[(g, module)]) for g in groups):
            return None
        return [matrices[(g, module)].loc[ids.loc[shared].to_numpy()] for g, ids in zip(groups, by_prompt)]

    def resample(self, n_a: int, n_b: int, paired: bool) -> tuple[np.ndarray, np.ndarray]:
        """(n_boot, n) row indices for a and for b (the same rows when paired)."""
        ia = self.rng.integers(0, n_a, (self.n_boot, n_a))
        return ia, (ia if paired else self.rng.integers(0, n_b, (self.n_boot, n_b)))

    def pool(self, groups: list[str]) -> str:
        """One group holding the samples of several (a side of a comparison that matches more than one
        condition): '<g1> + <g2>', its matrices stacked, its prompts and lengths joined."""
        name = " + ".join(groups)
        self.pooled.add(name)
        for matrices in self.metrics.values():
            for module in {m for (g, m) in matrices if g in groups}:
                parts = [matrices[(g, module)] for g in groups if (g, module) in matrices]
                if len(parts) == len(groups) and (name, module) not in matrices:
                    frames = [p.set_axis([f"{g}:{i}" for i in p.index]) for g, p in zip(groups, parts)]
                    matrices[(name, module)] = pd.concat(frames)
        for joined in (self.prompts, self.lengths):
            if all(g in joined for g in groups):
                joined[name] = pd.concat([joined[g].set_axis([f"{g}:{i}" for i in joined[g].index]) for g in groups])
        return name


@dataclass
class Cell:
    """The groups a claim looks at together: one value (``key``) of its ``per`` attribute, or every
    group of the run. ``attributes``: group -> its attributes, in run order."""

    key: str
    attributes: dict
    ctx: Context | None = None

    def find(self, selector: dict) -> list[str]:
        """Every group whose attributes match ``selector`` ({attribute: value or list of values})."""
        return [g for g, attrs in self.attributes.items() if matches(attrs, selector)]

    def one(self, selector: dict) -> str | None:
        """The group matching ``selector``: the only one, several pooled into one, or None."""
        found = self.find(selector)
        if len(found) > 1 and self.ctx is not None:
            return self.ctx.pool(found)
        return found[0] if found else None

    def applies(self, where: dict) -> bool:
        return bool(self.find(where))


@dataclass(frozen=True)
class Where:
    """Where a claim kind's statistic looks: its cell, the cells of the same ``per`` (for a reference pair),
    and between two runs the second run's cell (``cell`` is then the first run's)."""

    cell: Cell
    reference: list = field(default_factory=list)
    other: Cell | None = None


def matches(attributes: dict, selector: dict) -> bool:
    """Every attribute of ``selector`` has (one of) its value(s) in ``attributes``."""
    for key, wanted in selector.items():
        values = wanted if isinstance(wanted, (list, tuple)) else [wanted]
        if attributes.get(key) not in [str(v) for v in values]:
            return False
    return True


def cells_of(attributes: dict, per: str | None, ctx: Context | None = None, whole: str = "") -> dict[str, Cell]:
    """{key: Cell} in run order: one cell per value of the ``per`` attribute ('' for groups without it),
    or one cell of every group, named ``whole``, when ``per`` is None."""
    cells: dict[str, dict] = {}
    for group, attrs in attributes.items():
        key = str(attrs.get(per, "")) if per else whole
        cells.setdefault(key, {})[group] = attrs
    return {key: Cell(key, groups, ctx) for key, groups in cells.items()}


def label(selector: dict, labels: dict, main: str | None = None) -> str:
    """Words for the condition a selector asks for: 'None CoT (irrelevant)' from {style: none, variant:
    irrelevant} with the study's labels, the ``main`` attribute's value first (a value whose label is empty,
    like 'correct', is left out)."""
    keys = sorted(selector, key=lambda k: k != main)
    words = [labels.get(str(selector[k]), str(selector[k])) for k in keys if not isinstance(selector[k], (list, tuple))]
    words = [w for w in words if w]
    return words[0] + (f" ({', '.join(words[1:])})" if len(words) > 1 else "") if words else "a condition"
