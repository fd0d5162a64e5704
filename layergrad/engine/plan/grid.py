"""The sizes a plan is timed at: a half-octave grid of lengths and eigensolver sizes, and the cells' keys."""

from __future__ import annotations

import math

SMALL = 32  # below this size candidates do not differ: the defaults, never timed
MARGIN = 0.9  # a candidate replaces the default only when it takes at most 90% of its time


def point(k: int) -> int:
    """The k-th point of the half-octave grid of sizes: round(2^(k/2)) (..., 256, 362, 512, 724, ...)."""
    return round(2 ** (k / 2))


def grid_index(n: int) -> int:
    """The index of the smallest grid point ≥ n."""
    k = max(0, math.floor(2 * math.log2(max(n, 1))) - 1)
    while point(k) < n:
        k += 1
    return k


def bucket(n: int) -> int:
    """Eigensolver sizes are planned in half-octave buckets: the smallest grid point ≥ n (at least 32)."""
    return max(SMALL, point(grid_index(n)))


def representative(top: int) -> int:
    """The size a bucket is timed at: the geometric middle of (top/√2, top]."""
    return max(SMALL, round(top / 2 ** 0.25))


def around(t: int) -> tuple[int, int]:
    """The grid points a length lies between (equal when it is one): cells are timed there and their
    times interpolated in log T, so a route's crossover is found at the sample's own length."""
    k = grid_index(t)
    return (t, t) if point(k) == t else (max(SMALL, point(k - 1)), point(k))


def cell_key(g: int, p: int, d: int, sharing: int) -> str:
    return f"T{g}|{p}x{d}|shared by {sharing}"


def pick(times: dict[str, float], default: str, margin: float = MARGIN) -> str:
    """The default, unless another candidate takes at most ``margin`` of its time (the fastest of those)."""
    fastest = min(times, key=times.get)
    return fastest if times[fastest] <= margin * times[default] else default
