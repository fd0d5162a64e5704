"""Comparisons of floating-point tables that hold on every CPU, each with its tolerance derived from what it
compares (kernel-matrix runs the suite under other machines' kernels to prove it).

Two kinds of comparison:

- **Computed statistics** (an engine run against stored tables): an fp32 forward and backward moves every
  statistic by ~1e-7 relative between CPUs, BLASes and thread counts (measured under the four kernel-matrix
  settings: at most 1e-6); ``STAT_RTOL`` = 1e-5 holds with a 10x margin. Quantities that can be near 0 are
  compared absolutely at their own scale: σ_min (the rank-deficient σ_n is rounding noise) at 1e-6 of the
  row's σ1, a cosine at 1e-5 (cosines are bounded by 1), a spectrum's σ at 1e-6 of its σ1.
- **Analysis of fixed inputs** (stored statistics in, tables out): float64 numpy/scipy on bit-identical
  inputs moves a number by a few ulps of its inputs; differences of nearly equal values (a relative change
  of two close means, a MAD of a flat curve) amplify that by at most ~1e6 here, far below ``ANALYSIS_TOL``.
  Every column is compared absolutely at the column's own scale (its largest magnitude in the table) plus
  relatively, so a quantity near 0 never meets a relative test. Text is compared with its printed numbers
  parsed and held to the same tolerance (a number printed as 0.081 could print as 0.082 on a knife edge).
"""

import re

import numpy as np
import pandas as pd

STAT_RTOL = 1e-5
COSINE_ATOL = 1e-5
SPECTRUM_ATOL = 1e-6  # of σ1
ANALYSIS_TOL = 1e-9
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def assert_stats_close(got: pd.DataFrame, want: pd.DataFrame, *, ignore=()) -> None:
    """An engine table (stats or samples, same rows in the same order) against a stored one."""
    assert [c for c in got.columns if c not in ignore] == list(want.columns)
    for column in want.columns:
        if column == "spectrum":
            for a, b in zip(want[column], got[column]):
                np.testing.assert_allclose(b, a, rtol=0, atol=SPECTRUM_ATOL * (a[0] if len(a) else 1), err_msg=column)
        elif column == "sigma_min":
            assert_within(got[column], want[column], SPECTRUM_ATOL * want.sigma_max, column)
        elif column.startswith("cosine"):
            np.testing.assert_allclose(got[column], want[column], rtol=0, atol=COSINE_ATOL, err_msg=column)
        elif want[column].dtype.kind == "f":
            np.testing.assert_allclose(got[column], want[column], rtol=STAT_RTOL, atol=0, err_msg=column)
        else:
            assert got[column].tolist() == want[column].tolist(), column


def assert_within(got, want, atol, what: str) -> None:
    """|got - want| <= atol elementwise (atol an array: each value's own scale); NaN only where NaN."""
    got, want, atol = (np.asarray(v, dtype=float) for v in (got, want, atol))
    assert (np.isnan(got) == np.isnan(want)).all(), what
    bad = np.flatnonzero(np.abs(got - want) > atol)
    assert not len(bad), f"{what}: {len(bad)} values off, first at {bad[0]}: {got[bad[0]]!r} vs {want[bad[0]]!r}"


def assert_analysis_close(got: pd.DataFrame, want: pd.DataFrame, name: str = "") -> None:
    """An analysis table of fixed inputs against a stored one: numbers to ``ANALYSIS_TOL`` of their column's
    scale, texts equal once their printed numbers are parsed and compared the same way."""
    assert list(got.columns) == list(want.columns) and len(got) == len(want), name
    for column in want.columns:
        if want[column].dtype.kind in "fiu":
            assert_numbers_close(got[column].to_numpy(float), want[column].to_numpy(float), f"{name}.{column}")
        else:
            assert_texts_close(got[column], want[column], f"{name}.{column}")


def assert_numbers_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    finite = want[np.isfinite(want)]
    scale = float(np.abs(finite).max()) if len(finite) else 0.0
    np.testing.assert_allclose(got, want, rtol=ANALYSIS_TOL, atol=ANALYSIS_TOL * scale, err_msg=what)


def assert_texts_close(got: pd.Series, want: pd.Series, what: str) -> None:
    for i, (a, b) in enumerate(zip(got.fillna(""), want.fillna(""))):
        a, b = str(a), str(b)
        assert NUMBER.sub("#", a) == NUMBER.sub("#", b), f"{what}[{i}]: {a!r} != {b!r}"
        for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)):  # a printed number is off by up to one unit of
            # its last digit when the value sits on a rounding edge
            assert abs(float(x) - float(y)) <= ANALYSIS_TOL * abs(float(y)) + last_digit(y), f"{what}[{i}]: {a!r} != {b!r}"


def last_digit(printed: str) -> float:
    """One unit of the last printed digit of a number written in fixed notation (0 for integers and
    exponent forms, which are printed to full precision here)."""
    if "e" in printed.lower() or "." not in printed:
        return 0.0
    return 10.0 ** -len(printed.split(".")[1])
