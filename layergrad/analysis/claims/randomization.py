"""Randomization tests, one family for every claim: sign-flip (the same units on both sides, swapped unit by unit)
and label permutation (different units, their side labels shuffled), of the claim's own statistic.

Exact where every arrangement can be listed (2^n sign vectors, C(N, n_a) splits, up to ``MAX_EXACT``); else
``DRAWS`` random arrangements with SciPy's convention ((k + 1) / (draws + 1) per side), and where fewer than
``TAIL_DRAWS`` arrangements reach the observed value a normal tail of the arrangements' own spread (the
permutation distribution of a mean is close to normal; a share of 0 of 4096 only says p < 5e-4, which Holm over
hundreds of rows would turn into 'inconclusive' however large the effect). A p-value never goes below the
design's exact floor: the smallest p its enumeration could give (2 / 2^n paired, 2 / C(N, n_a) unpaired), so
a claim on few samples cannot be more certain than its data allow, whichever kind of statistic it is.
Two-sided p is twice the smaller one-sided p (SciPy's ``permutation_test``). A label permutation studentizes
its statistic (``mean_test``), so that two sides of unequal spread or size keep its level.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import comb, log2

import numpy as np
from scipy import stats

from layergrad.analysis.separability import auroc_rows

MAX_EXACT = 4096  # list every arrangement up to this many
DRAWS = 4096  # random arrangements beyond it
TAIL_DRAWS = 10  # fewer arrangements than this beyond the observed value: the normal tail decides
ATOL = 1e-12  # arrangements within this (relative) of the observed value count as reaching it
CHANGE_WORDS = "sign-flip test of the log ratio of the means on shared prompts, label permutation otherwise"


@dataclass(frozen=True)
class Design:
    """Which rows may be exchanged under the null: ``paired`` (n units on both sides, swapped one by one) or not
    (n_a and n_b rows whose labels are shuffled)."""

    paired: bool
    n_a: int
    n_b: int

    @property
    def count(self) -> int:
        """How many arrangements the design has."""
        return 2 ** self.n_a if self.paired else comb(self.n_a + self.n_b, self.n_a)

    @property
    def exact(self) -> bool:
        return self.count <= MAX_EXACT

    @property
    def floor(self) -> float:
        """The smallest two-sided p the exact test can reach."""
        count = self.count
        return min(1.0, 2.0 / count) if count < 10 ** 300 else 0.0

    def arrangements(self, rng: np.random.Generator) -> np.ndarray:
        """(draws, n) 0/1: paired, 1 = the unit's sides swapped; unpaired, over the N = n_a + n_b pooled rows,
        1 = the row is on side a. Every arrangement when exact (the identity among them), else random ones."""
        if self.paired:
            if self.exact:
                return (np.arange(self.count)[:, None] >> np.arange(self.n_a)[None, :]) & 1
            return rng.integers(0, 2, (DRAWS, self.n_a))
        n = self.n_a + self.n_b
        if self.exact:
            out = np.zeros((self.count, n), dtype=np.int64)
            for i, rows in enumerate(itertools.combinations(range(n), self.n_a)):
                out[i, list(rows)] = 1
            return out
        keys = rng.random((DRAWS, n))
        return (np.argsort(np.argsort(keys, axis=1), axis=1) < self.n_a).astype(np.int64)

    def words(self) -> str:
        kind = "sign-flip" if self.paired else "label permutation"
        how = f"exact, {self.count} arrangements" if self.exact else f"{DRAWS} random arrangements"
        return f"{kind} ({how}; floor {self.floor:.2g})"

    def tost_words(self) -> str:
        how = f"exact, {self.count} arrangements" if self.exact else f"{DRAWS} random arrangements"
        kind = "sign-flip" if self.paired else "label-permutation"
        return f"two one-sided {kind} tests ({how}; floor {self.floor / 2:.2g})"


@dataclass(frozen=True)
class Result:
    """A randomization test's p-values, its observed statistic in units of the null spread (``z``) and its
    design (for the floor and the words)."""

    less: float
    greater: float
    z: float
    design: Design
    equivalence: float | None = None  # two one-sided tests: the larger of their p (each floored at 1 / count)
    words: str = ""  # the test's words where they are not the design's
    spread: float = np.nan  # the statistic's standard error: its spread over the arrangements (a studentized test:
    # its delta-method standard error on the data)

    @property
    def p(self) -> float:
        if self.equivalence is not None:
            return float(max(self.equivalence, self.design.floor / 2))
        return float(max(min(1.0, 2 * min(self.less, self.greater)), self.design.floor))

    def row(self) -> dict:
        words = self.words or (self.design.words() if self.equivalence is None else self.design.tost_words())
        return {"p": self.p, "test": words, "z": self.z}


def one_sided(observed: float, null: np.ndarray, design: Design, exact: bool | None = None) -> Result:
    """p of 'as small' and 'as large' as ``observed`` among the arrangements' statistics ``null`` (``exact``:
    every arrangement, by default when the design lists them all; else random ones)."""
    null = null[np.isfinite(null)]
    if not len(null) or not np.isfinite(observed):
        return Result(np.nan, np.nan, np.nan, design)
    tol = ATOL * max(1.0, abs(observed))
    below, above = int((null <= observed + tol).sum()), int((null >= observed - tol).sum())
    spread = float(null.std())
    z = (observed - float(null.mean())) / spread if spread > 0 else (0.0 if observed == null.mean() else np.inf)
    if design.exact if exact is None else exact:
        return Result(below / len(null), above / len(null), z, design, spread=spread)
    less, greater = (below + 1) / (len(null) + 1), (above + 1) / (len(null) + 1)
    if np.isfinite(z):  # a tail the draws cannot resolve: the normal tail of their spread, never below the floor
        if below < TAIL_DRAWS:
            less = max(float(stats.norm.cdf(z)), design.floor / 2)
        if above < TAIL_DRAWS:
            greater = max(float(stats.norm.sf(z)), design.floor / 2)
    return Result(less, greater, z, design, spread=spread)


def mean_test(a: np.ndarray, b: np.ndarray, paired: bool, statistic, rng: np.random.Generator) -> Result:
    """The randomization test of ``statistic(mean row of a, mean row of b)`` (broadcast over a leading axis of
    arrangements; 0 where the two means are equal); a, b: (n_a, k), (n_b, k) rows (the same units in the same
    order when ``paired``).

    Paired: the units' sides swapped (valid where each unit's difference is symmetric under the null, whatever
    the units' spreads). Unpaired: the labels shuffled and the statistic *studentized* — divided by its
    delta-method standard error with each side's own variance (Welch's, for a nonlinear statistic through its
    gradient at the pooled mean) in every arrangement alike, so that unequal spreads and sizes of the two sides
    do not make the test liberal (a studentized permutation test is exact under exchangeability and
    asymptotically valid without it)."""
    a, b = np.asarray(a, dtype=float).reshape(len(a), -1), np.asarray(b, dtype=float).reshape(len(b), -1)
    design = Design(paired, len(a), len(b))
    flips = design.arrangements(rng).astype(float)
    observed = float(statistic(a.mean(0)[None], b.mean(0)[None])[0])
    if paired:
        shift = flips @ (b - a) / len(a)
        null = statistic(a.mean(0) + shift, b.mean(0) - shift)
        return one_sided(observed, np.asarray(null, dtype=float), design)
    pooled = np.vstack([a, b])
    sum_a = flips @ pooled
    null = np.asarray(statistic(sum_a / len(a), (pooled.sum(0) - sum_a) / len(b)), dtype=float)
    grad_a, grad_b = gradient(statistic, pooled.mean(0))
    u, v = pooled @ grad_a, pooled @ grad_b  # each row's contribution, were it on side a / on side b
    se = lambda on_a: np.sqrt(side_variance(u, on_a, len(a)) / len(a) + side_variance(v, 1 - on_a, len(b)) / len(b))
    here = np.r_[np.ones(len(a)), np.zeros(len(b))][None]
    observed_se = float(se(here)[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        result = one_sided(observed / observed_se, null / se(flips), design)
    return Result(result.less, result.greater, result.z, design, words="studentized " + design.words(),
                  spread=observed_se)


def side_variance(values: np.ndarray, on_side: np.ndarray, n: int) -> np.ndarray:
    """Per arrangement (rows of 0/1 ``on_side``), the sample variance of ``values`` over the n rows on that side."""
    total, squares = on_side @ values, on_side @ values ** 2
    return np.maximum(squares - total ** 2 / n, 0) / max(n - 1, 1)


def gradient(statistic, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient of ``statistic(mean a, mean b)`` in each argument at (point, point)."""
    k = len(point)
    step = 1e-6 * np.maximum(np.abs(point), np.abs(point).mean() or 1.0)
    bumps = np.diag(step)
    both = np.vstack([point + bumps, point - bumps])
    at = np.broadcast_to(point, both.shape)
    d_a = np.asarray(statistic(both, at), dtype=float)
    d_b = np.asarray(statistic(at, both), dtype=float)
    return (d_a[:k] - d_a[k:]) / (2 * step), (d_b[:k] - d_b[k:]) / (2 * step)


def equivalence_test(x: np.ndarray, y: np.ndarray, paired: bool, margin: float, rng: np.random.Generator) -> Result:
    """Two one-sided randomization tests of 'mean(y) / mean(x) - 1 lies within ±margin' (positive values): y
    scaled to each bound is tested against x, the larger one-sided p reported (as ``less`` and ``greater``)."""
    log_ratio = log_ratio_or_difference(True)
    upper = mean_test(x, y / (1 + margin), paired, log_ratio, rng)  # below 1 + margin
    lower = mean_test(x, y / (1 - margin), paired, log_ratio, rng) if margin < 1 else upper  # above 1 - margin
    p = max(upper.less, lower.greater if margin < 1 else 0.0)
    return Result(upper.less, lower.greater, min(-upper.z, lower.z), upper.design, equivalence=p)


def one_sample_equivalence(values: np.ndarray, margin: float, rng: np.random.Generator) -> Result:
    """Two one-sided sign-flip tests of 'the mean lies within ±margin' (symmetric about each bound under its null)."""
    values = np.asarray(values, dtype=float)[:, None]
    zero = np.zeros_like(values)
    difference = log_ratio_or_difference(False)
    upper = mean_test(zero, values - margin, True, difference, rng)
    lower = mean_test(zero, values + margin, True, difference, rng)
    return Result(upper.less, lower.greater, min(-upper.z, lower.z), upper.design,
                  equivalence=max(upper.less, lower.greater))


def paired_rank_test(labels: np.ndarray, first: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> Result:
    """AUROC(first) - AUROC(second) on the same samples: the two scores' pooled ranks swapped sample by sample
    (a paired permutation test of two AUROCs); labels 0/1."""
    r1, r2 = stats.rankdata(first) / len(first), stats.rankdata(second) / len(second)
    design = Design(True, len(labels), len(labels))
    flips = design.arrangements(rng).astype(float)
    swapped = auroc_of_swaps(labels, r1, r2)
    null = swapped(flips) - swapped(1 - flips)
    observed = float(auroc_rows(labels[None], r1[None])[0] - auroc_rows(labels[None], r2[None])[0])
    return one_sided(observed, null, design)


def auroc_of_swaps(labels: np.ndarray, first: np.ndarray, second: np.ndarray):
    """f -> the AUROC of each arrangement's scores, ``second`` where f is 1 and ``first`` where 0 (rows of 0/1), from
    the four comparisons of every positive with every negative (no ranking per arrangement)."""
    pos, neg = labels == 1, labels == 0
    compare = lambda a, b: (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])
    scores = (first, second)
    table = {(i, j): compare(scores[i][pos], scores[j][neg]) for i in (0, 1) for j in (0, 1)}
    total = pos.sum() * neg.sum()

    def auroc_of(flips: np.ndarray) -> np.ndarray:
        fp, fn = flips[:, pos], flips[:, neg]
        sides = {0: (1 - fp, 1 - fn), 1: (fp, fn)}
        return sum(((sides[i][0] @ table[(i, j)]) * sides[j][1]).sum(1) for i in (0, 1) for j in (0, 1)) / total

    return auroc_of


def log_ratio_or_difference(positive: bool):
    """The test statistic of a change of means: log(mean b / mean a) for positive values (symmetric when the
    sides are swapped: a ratio of 2 and of 1/2 are equally far), else mean b - mean a."""
    if positive:
        return lambda ma, mb: np.log(mb[:, 0] / ma[:, 0])
    return lambda ma, mb: mb[:, 0] - ma[:, 0]


def smallest_n(threshold: float, paired: bool) -> int:
    """The fewest units per side whose exact floor lies below ``threshold`` (2 / 2^n, or 2 / C(2n, n))."""
    if paired:
        return int(np.floor(log2(2 / threshold))) + 1
    n = 1
    while 2 / comb(2 * n, n) >= threshold:
        n += 1
    return n
