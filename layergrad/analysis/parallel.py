"""The analysis on every core it may use: independent pieces (a metric's tables, a pair's separability, a draw of the
claims, a figure) run in forked processes, each inheriting everything it reads from its parent, so nothing but
its result crosses a process boundary. Where forking is not to be had (another OS, a single core, a process
that may not fork) they run one after another here, with the same results.

The work is numpy and matplotlib on one core each, so processes, not threads: a 2-core machine runs two pieces
at once.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

_WORK = None  # the function of forked_map, inherited by its forked workers


def cores() -> int:
    """The cores this process may use: its affinity, capped by OMP_NUM_THREADS where that is set."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(count, int(omp)) if omp.isdigit() and int(omp) > 0 else count)


def forked_map(work, items: list, workers: int | None = None) -> list:
    """[work(item) for item in items], the items spread over forked processes (``workers``, default every core);
    in this process where there is one item, one core, or no fork."""
    items = list(items)
    workers = min(len(items), workers or cores())
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods() or _WORK is not None:
        return [work(item) for item in items]
    return _in_pool(work, items, workers)


def _in_pool(work, items: list, workers: int) -> list:
    global _WORK
    _WORK = work
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_call, items))
    except (OSError, BrokenProcessPool):  # no processes to be had here: one after another
        return [work(item) for item in items]
    finally:
        _WORK = None


def _call(item):
    return _WORK(item)
