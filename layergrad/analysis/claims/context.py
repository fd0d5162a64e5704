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

ALL = "all modules"  # the module of a claim's summary row: the mean over the modules


@dataclass(frozen=True)
class Units:
    """The rows a two-sided comparison exchanges: per side a (units x layers) array (``columns``: the layers),
    ``paired`` when unit i of
    a and of b share a prompt; ``members``: per side, the sample ids behind each unit (a prompt's samples
    averaged into one unit where a side holds a prompt more than once — a pooled side, a repeated question —
    so that a test never exchanges samples that cluster); ``keys``: per side, the code of each unit's prompt (or
    sample id; Context.codes_of)."""

    a: np.ndarray
    b: np.ndarray
    paired: bool
    members: tuple = ((), ())
    keys: tuple = ((), ())
    origin: tuple | None = None  # a draw's units: (all the data's units, the two sides' masks)
    columns: tuple = ()
    cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def clustered(self) -> bool:
        return any(len(m) > 1 for side in self.members for m in side)

    def covariate(self, values: dict, groups: tuple[str, str]) -> tuple[np.ndarray, np.ndarray] | None:
        """Per unit of each side, the geometric mean of a per-sample covariate ({group: Series by sample id}) over
        its samples; None where a side lacks it."""
        if self.origin is not None:
            full, masks = self.origin
            got = full.covariate(values, groups)
            return None if got is None else (got[0][masks[0]], got[1][masks[1]])
        key = (id(values), groups)
        if key not in self.cache:
            self.cache[key] = self._covariate(values, groups)
        return self.cache[key]

    def _covariate(self, values: dict, groups: tuple[str, str]):
        out = []
        for group, side in zip(groups, self.members):
            if group not in values:
                return None
            ids = [i for m in side for i in m]
            unit = np.repeat(np.arange(len(side)), [len(m) for m in side])
            logs = np.log(np.maximum(values[group].reindex(ids).to_numpy(dtype=float), 1e-12))
            out.append(np.exp(np.bincount(unit, logs, len(side)) / np.bincount(unit, minlength=len(side))))
        return out[0], out[1]

    def restricted(self, keep: np.ndarray) -> "Units":
        """The units whose key is kept (``keep``: a boolean per key code, a draw of prompts)."""
        masks = [keep[k] for k in self.keys]
        return Units(self.a[masks[0]], self.b[masks[1]], self.paired,
                     tuple(tuple(m for m, ok in zip(side, mask) if ok) for side, mask in zip(self.members, masks)),
                     tuple(np.asarray(k)[mask] for k, mask in zip(self.keys, masks)), (self, masks), self.columns)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The two sides as (units x layers) frames."""
        return pd.DataFrame(self.a, columns=list(self.columns)), pd.DataFrame(self.b, columns=list(self.columns))


@dataclass
class Context:
    """Per-sample matrices (``metrics``: metric -> {(group, module): samples x layers}), prompts by group,
    the bootstrap count and the generator every statistic draws from (in table order); ``arrangements``: the
    generator of the randomization tests' random arrangements (apart, so that the intervals do not depend on
    which test a row uses); ``covariates``: per confound (length, loss) its per-sample values by group.

    A *draw* (``keep``: which prompts, a sample without one standing for itself) restricts everything a kind reads to
    those prompts' samples: the claims once more on a random half (claims/stability.py)."""

    metrics: dict
    prompts: dict
    n_boot: int
    rng: np.random.Generator
    unavailable: dict = field(default_factory=dict)  # group -> why it has no values (a dead cell of a study)
    pooled: set = field(default_factory=set)  # the names of groups made by pool() (not conditions of the run)
    covariates: dict = field(default_factory=dict)  # confound -> {group: Series by sample_id}
    arrangements: np.random.Generator = field(default_factory=lambda: np.random.default_rng(1))
    keep: np.ndarray | None = None  # a draw: per key code (Context.codes_of), whether its samples are kept
    shared: dict = field(default_factory=dict, repr=False)  # units, aligned rows and key codes of all the data
    cache: dict = field(default_factory=dict, repr=False)  # this draw's matrices
    attributes: dict = field(default_factory=dict)  # group -> its attributes (the run's conditions)

    @property
    def lengths(self) -> dict:
        """{group: response tokens by sample_id}."""
        return self.covariates.get("length", {})

    def of(self, metric: str) -> dict:
        full = self.metrics.get(metric, {})
        if self.keep is None:
            return full
        if metric not in self.cache:
            self.cache[metric] = {key: m[self.keep[self.codes_of(key[0], m.index)]] for key, m in full.items()}
        return self.cache[metric]

    def codes_of(self, group: str, index) -> np.ndarray:
        """Each sample's key as an integer code, the same in every group: its prompt's, else its own id's."""
        codes = self.shared.setdefault("codes", {})
        found = self.shared.setdefault(("codes", group), {})
        index = np.asarray(index, dtype=object)
        missing = [i for i in index if i not in found]
        if missing:
            prompts = self.prompts[group].reindex(missing) if group in self.prompts else [None] * len(missing)
            for i, p in zip(missing, prompts):
                found[i] = codes.setdefault(("sample", str(i)) if p is None or p != p else p, len(codes))
        return np.fromiter((found[i] for i in index), dtype=np.int64, count=len(index))

    def all_codes(self) -> int:
        """How many key codes the data have (every sample of every metric given its code)."""
        for metric in self.metrics.values():
            for (group, _), m in metric.items():
                self.codes_of(group, m.index)
        return len(self.shared.setdefault("codes", {}))

    def draw(self, keep: np.ndarray, seed: int, n_boot: int) -> "Context":
        """The same context restricted to the samples whose key code ``keep`` marks, with generators of its own."""
        return Context(self.metrics, self.prompts, n_boot, np.random.default_rng(seed), self.unavailable,
                       self.pooled, self.covariates, np.random.default_rng(seed + 1), keep, self.shared,
                       attributes=self.attributes)

    def units(self, a: str, b: str, module: str, metric: str = "nuclear_norm", paired: str = "auto") -> Units | None:
        """The units of one metric and module to compare, or None when either side is missing: paired on the
        prompts both share (most of them, ``paired`` auto), a side's repeated prompt averaged into one unit."""
        key = ("units", a, b, module, metric, paired)
        if key not in self.shared:
            self.shared[key] = self._units(a, b, module, metric, paired)
        units = self.shared[key]
        return units if units is None or self.keep is None else units.restricted(self.keep)

    def _units(self, a: str, b: str, module: str, metric: str, paired: str) -> Units | None:
        matrices = self.metrics.get(metric, {})
        if (a, module) not in matrices or (b, module) not in matrices:
            return None
        ma, mb = matrices[(a, module)], matrices[(b, module)]
        keys = (self.codes_of(a, ma.index), self.codes_of(b, mb.index))
        if a not in self.prompts or b not in self.prompts:
            return units_of(ma, mb, False, singles(ma, mb), keys)
        pa, pb = (self.prompts[g].reindex(m.index) for g, m in ((a, ma), (b, mb)))
        if not (pa.duplicated().any() or pb.duplicated().any()):
            pairing = None if paired == "no" else paired_index(pa.dropna(), pb.dropna())
            if pairing:
                ia, ib = [p[0] for p in pairing], [p[1] for p in pairing]
                shared = self.codes_of(a, ia)
                return units_of(ma.loc[ia], mb.loc[ib], True, (tuple((i,) for i in ia), tuple((i,) for i in ib)),
                                (shared, shared))
            return units_of(ma, mb, False, singles(ma, mb), keys)
        (ca, ka), (cb, kb) = clusters(ma, keys[0]), clusters(mb, keys[1])
        shared = ca.index.intersection(cb.index, sort=False)
        if paired != "no" and len(shared) >= MIN_PAIRED and len(shared) >= 0.5 * min(len(ca), len(cb)):
            return units_of(ca.loc[shared], cb.loc[shared], True, (tuple(ka[p] for p in shared),
                                                                  tuple(kb[p] for p in shared)),
                            (np.asarray(shared, dtype=np.int64),) * 2)
        return units_of(ca, cb, False, (tuple(ka[p] for p in ca.index), tuple(kb[p] for p in cb.index)),
                        (np.asarray(ca.index, dtype=np.int64), np.asarray(cb.index, dtype=np.int64)))

    def pair(self, a: str, b: str, module: str, metric: str = "nuclear_norm", paired: str = "auto"):
        """(rows of a, rows of b, paired) of ``units``, or None."""
        units = self.units(a, b, module, metric, paired)
        return None if units is None else (*units.frames(), units.paired)

    def aligned(self, groups: list[str], module: str, metric: str = "nuclear_norm") -> list[pd.DataFrame] | None:
        """The rows of several groups on the prompts all of them have, in one order (a prompt a group holds more
        than once averaged into one row): the units of a paired test over more than two conditions; None when
        they do not pair up (as ``paired_index``)."""
        key = ("aligned", tuple(groups), module, metric)
        if key not in self.shared:
            self.shared[key] = self._aligned(groups, module, metric)
        rows = self.shared[key]
        if rows is None or self.keep is None:
            return rows
        mask = self.keep[rows[0].index.to_numpy(dtype=np.int64)]
        return [r[mask] for r in rows]

    def _aligned(self, groups: list[str], module: str, metric: str) -> list[pd.DataFrame] | None:
        matrices = self.metrics.get(metric, {})
        if any((g, module) not in matrices or g not in self.prompts for g in groups):
            return None
        parts = [clusters(matrices[(g, module)], self.codes_of(g, matrices[(g, module)].index))[0] for g in groups]
        shared = parts[0].index
        for other in parts[1:]:
            shared = shared.intersection(other.index, sort=False)
        if len(shared) < MIN_PAIRED or len(shared) < 0.5 * min(len(matrices[(g, module)]) for g in groups):
            return None
        return [p.loc[shared] for p in parts]

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
        for joined in (self.prompts, *self.covariates.values()):
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


def units_of(ma: pd.DataFrame, mb: pd.DataFrame, paired: bool, members: tuple, keys: tuple) -> Units:
    return Units(ma.to_numpy(), mb.to_numpy(), paired, members, tuple(np.asarray(k, dtype=np.int64) for k in keys),
                 columns=tuple(ma.columns))


def singles(ma: pd.DataFrame, mb: pd.DataFrame) -> tuple:
    """Each sample its own unit."""
    return tuple((i,) for i in ma.index), tuple((i,) for i in mb.index)


def clusters(matrix: pd.DataFrame, keys: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """(one row per key — the code of a prompt, or of a sample's own id —: the mean of its samples' rows, {key: its
    sample ids})."""
    grouped = matrix.groupby(np.asarray(keys), sort=False)
    members = {k: tuple(v) for k, v in grouped.groups.items()}
    return grouped.mean(), members


def module_means(matrices: dict) -> dict:
    """The matrices with one more module per group, ``ALL`` ('all modules'): per sample, the mean over the group's
    modules (where there are several and they share their layers), so that a claim's 'all modules' row is a test
    of its own."""
    out = dict(matrices)
    for group in dict.fromkeys(g for g, _ in matrices):
        parts = [m for (g, mod), m in matrices.items() if g == group and mod != ALL]
        if len(parts) < 2 or any(list(p.columns) != list(parts[0].columns) for p in parts):
            continue
        shared = parts[0].index
        for p in parts[1:]:
            shared = shared.intersection(p.index, sort=False)
        if len(shared):
            out[(group, ALL)] = sum(p.loc[shared] for p in parts) / len(parts)
    return out


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
