"""A claim's effect at equal confounds (response length by default; loss where a claim names it), and whether the
design can estimate it at all.

The adjusted effect is a regression on the log confounds: paired, the intercept of log(y/x) ~ 1 + log(c_y/c_x)
(the log ratio of a pair whose confounds are equal); unpaired, the side's coefficient in log value ~ 1 + side +
log c. It is *identified* only where the data hold comparisons near equal confounds, else the regression
extrapolates: paired, at least ``ENOUGH_NEAR`` of the pairs within ``NEAR_EQUAL`` of each other (a design whose
pairs are all 3x longer on one side cannot say what happens at equal length, however tight the fit); unpaired,
at least ``ENOUGH_OVERLAP`` of the samples inside the range both sides cover. A claim whose effect is not
identified is ``confounded`` (testing.judge): the design cannot tell the claim's contrast from its confound.

Tests: Freedman-Lane — the null model's residuals exchanged, the full model refitted: sign flips for pairs (a
wild-bootstrap-like flip, robust to unequal spreads), permutations for two sides with the side coefficient
studentized by its HC2 standard error (robust to unequal spreads; DiCiccio & Romano 2017). The CI: the pairs, or
each side's samples, resampled. A curved fit (each log confound and its square) beside it says whether the
verdict leans on the straight line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layergrad.analysis.claims.randomization import DRAWS, Design, Result, one_sided

NEAR_EQUAL = 1.25  # paired: a pair's confounds count as equal within this ratio
ENOUGH_NEAR = 0.5  # paired: the share of pairs near equality the adjusted effect needs
ENOUGH_OVERLAP = 0.5  # unpaired: the share of samples in the range both sides cover it needs


@dataclass(frozen=True)
class Support:
    """Whether a confound leaves the adjusted effect identified, and why in words."""

    confound: str
    identified: bool
    words: str


def paired_support(confound: str, log_ratio: np.ndarray, names: tuple[str, str] = ("a", "b")) -> Support:
    """The share of pairs whose confounds (``log_ratio``: log(b's / a's)) lie within ``NEAR_EQUAL`` of each other."""
    near = float(np.mean(np.abs(log_ratio) <= np.log(NEAR_EQUAL))) if len(log_ratio) else 0.0
    larger = float(np.mean(log_ratio > 0)) if len(log_ratio) else 0.0
    words = (f"{confound}: {near:.0%} of the pairs within ±{NEAR_EQUAL - 1:.0%} of equal ({names[1]} larger in "
             f"{larger:.0%}, median ratio {np.exp(np.median(log_ratio)):.3g})")
    return Support(confound, near >= ENOUGH_NEAR, words)


def unpaired_support(confound: str, a: np.ndarray, b: np.ndarray, names: tuple[str, str] = ("a", "b")) -> Support:
    """The share of samples in the range of the confound both sides cover."""
    share = overlap(a, b)
    words = (f"{confound}: the ranges do not overlap ({names[0]} {a.min():.3g}–{a.max():.3g}, {names[1]} "
             f"{b.min():.3g}–{b.max():.3g})" if share == 0 else
             f"{confound}: {share:.0%} of the samples in the range both sides cover")
    return Support(confound, share >= ENOUGH_OVERLAP, words)


def overlap(a, b) -> float:
    """Share of the samples of both sides whose value lies in the range both sides cover (0: disjoint)."""
    lo, hi = max(np.nanmin(a), np.nanmin(b)), min(np.nanmax(a), np.nanmax(b))
    both = np.r_[a, b]
    return float(((both >= lo) & (both <= hi)).mean()) if lo <= hi else 0.0


@dataclass(frozen=True)
class Adjusted:
    """The log ratio at equal confounds, its bootstrap CI and Freedman-Lane test; the same from a curved fit."""

    log_ratio: float
    low: float
    high: float
    result: Result
    curved: float
    curved_result: Result

    def row(self) -> dict:
        with np.errstate(over="ignore"):  # an extrapolation far off the data can overflow: inf
            return {"adjusted": float(np.expm1(self.log_ratio)), "adjusted_low": float(np.expm1(self.low)),
                    "adjusted_high": float(np.expm1(self.high)), "adjusted_curved": float(np.expm1(self.curved)),
                    "p_curved": self.curved_result.p}


def adjusted_effect(x, y, cx, cy, paired: bool, n_boot: int, rng: np.random.Generator) -> Adjusted | None:
    """y against x (positive per-sample values) at equal confounds ``cx``, ``cy`` ((n, c) positive values, one
    column per confound); None where the design cannot separate the two (no spread of a confound)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    cx, cy = (np.log(np.asarray(c, dtype=float).reshape(len(c), -1)) for c in (cx, cy))
    if paired:
        return _paired(np.log(y) - np.log(x), cy - cx, n_boot, rng)
    return _unpaired(np.log(np.r_[x, y]), np.r_[np.zeros(len(x)), np.ones(len(y))], np.vstack([cx, cy]), n_boot, rng)


def curved(columns: np.ndarray) -> np.ndarray:
    """The columns and their squares (a quadratic in each log confound; paired, in the log ratio, so that the
    intercept stays the effect at equality)."""
    return np.column_stack([columns, columns ** 2])


def _paired(d: np.ndarray, l: np.ndarray, n_boot: int, rng) -> Adjusted | None:
    n = len(d)
    if n < 3 or not np.ptp(l, axis=0).all():
        return None
    design = Design(True, n, n)
    signs = 1 - 2 * design.arrangements(rng).astype(float)
    fits = []
    for columns in (l, curved(l)):
        full = np.column_stack([np.ones(n), columns])
        if n <= full.shape[1] or np.linalg.matrix_rank(full) < full.shape[1]:
            fits.append(None)
            continue
        c = np.linalg.pinv(full)[0]  # intercept = c . d
        residual = d - columns @ np.linalg.lstsq(columns, d, rcond=None)[0]  # the null: no difference at equality
        result = one_sided(float(c @ d), signs @ (c * residual), design)
        fits.append((float(c @ d), Result(result.less, result.greater, result.z, design,
                                          words="Freedman-Lane " + design.words())))
    if fits[0] is None:
        return None
    idx = rng.integers(0, n, (n_boot, n))
    low, high = np.nanpercentile(batched_ols(np.column_stack([np.ones(n), l])[idx], d[idx])[:, 0], [2.5, 97.5])
    bent = fits[1] or fits[0]
    return Adjusted(fits[0][0], float(low), float(high), fits[0][1], bent[0], bent[1])


def _unpaired(u: np.ndarray, side: np.ndarray, confounds: np.ndarray, n_boot: int, rng) -> Adjusted | None:
    n_a, n_b = int((side == 0).sum()), int((side == 1).sum())
    design = Design(False, n_a, n_b)
    order = np.argsort(rng.random((DRAWS, len(u))), axis=1)
    fits = []
    for columns in (confounds, curved(confounds)):
        full = np.column_stack([np.ones(len(u)), side, columns])
        if min(n_a, n_b) < 2 or len(u) <= full.shape[1] + 1 or np.linalg.matrix_rank(full) < full.shape[1]:
            fits.append(None)
            continue
        null = np.column_stack([np.ones(len(u)), columns])
        residual = u - null @ np.linalg.lstsq(null, u, rcond=None)[0]
        t_observed, effect = studentized_side(full, u[None])
        t_null, _ = studentized_side(full, residual[order])
        result = one_sided(float(t_observed[0]), t_null, design, exact=False)
        fits.append((float(effect[0]), Result(result.less, result.greater, result.z, design, words=(
            f"Freedman-Lane permutation, studentized ({DRAWS} random arrangements; floor {design.floor:.2g})"))))
    if fits[0] is None:
        return None
    a, b = np.flatnonzero(side == 0), np.flatnonzero(side == 1)
    idx = np.hstack([rng.choice(a, (n_boot, n_a)), rng.choice(b, (n_boot, n_b))])
    full = np.column_stack([np.ones(len(u)), side, confounds])
    low, high = np.nanpercentile(batched_ols(full[idx], u[idx])[:, 1], [2.5, 97.5])
    bent = fits[1] or fits[0]
    return Adjusted(fits[0][0], float(low), float(high), fits[0][1], bent[0], bent[1])


def studentized_side(design: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t, coefficient) of the side (column 1) for every row of ``ys``: the OLS coefficient over its HC2
    standard error (each residual scaled by 1 / (1 - its leverage))."""
    pinv = np.linalg.pinv(design)
    c = pinv[1]
    leverage = np.einsum("ij,ji->i", design, pinv)
    residuals = ys - (ys @ pinv.T) @ design.T
    variance = (residuals ** 2 / np.clip(1 - leverage, 1e-12, None)) @ (c ** 2)
    coefficient = ys @ c
    with np.errstate(invalid="ignore", divide="ignore"):
        return coefficient / np.sqrt(variance), coefficient


def batched_ols(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Least squares of every (N, k) design and its y at once; NaN where a resample's design is singular."""
    gram = np.einsum("bni,bnj->bij", xs, xs)
    rhs = np.einsum("bni,bn->bi", xs, ys)
    out = np.full(rhs.shape, np.nan)
    ok = np.linalg.cond(gram) < 1e12
    out[ok] = np.linalg.solve(gram[ok], rhs[ok][..., None])[..., 0]
    return out
