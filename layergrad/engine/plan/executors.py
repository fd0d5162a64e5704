"""Decision: whether a stack of spectral jobs runs on worker threads beside the backward or inline on the
calling thread — timed once per machine and thread budget."""

from __future__ import annotations

import math
import time

from layergrad.engine.plan.cache import cached_or_timed, timing_enabled
from layergrad.engine.plan.grid import pick
from layergrad.engine.plan.timing import random_matrix, spectra_job


def executor(budget: int) -> str:
    """'workers' (jobs on ``budget`` one-thread workers while the backward runs) or 'inline' (each job at
    once on the calling thread): the faster on a stack of jobs, timed once per machine and budget."""
    if budget < 2 or not timing_enabled():
        return "workers" if budget >= 2 else "inline"
    return cached_or_timed("executor", f"{budget} threads", lambda: time_executor(budget))["choice"]


def time_executor(budget: int) -> dict:
    """A stack of 4·budget jobs (the core route at T = 256 on 576×576) inline vs on the workers."""
    from layergrad.engine.threads import Jobs

    x, delta = random_matrix(1, 256, 576), random_matrix(1, 256, 576, seed=1)
    job = (lambda: spectra_job(x, delta))
    times = {}
    for name, size in (("inline", 0), ("workers", budget)):
        best = math.inf
        for _ in range(3):
            jobs = Jobs(size)
            start = time.perf_counter()
            for _ in range(4 * budget):
                jobs.submit(job)
            jobs.collect()
            best = min(best, (time.perf_counter() - start) * 1e3)
        times[name] = round(best, 3)
    return {"choice": pick(times, "workers" if budget >= 2 else "inline"), "ms": times}
