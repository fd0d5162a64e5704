"""The CPU thread budget and the one executor that does all per-target work.

The budget is ``--threads N`` if given, else the cores this process may use: its CPU affinity, a
cgroup CPU quota (containers, SLURM) and ``OMP_NUM_THREADS``, whichever is smallest. torch's
intra-op pool gets it for the forward and backward passes.

Every piece of per-target work (a target's factors, products, Gram matrices and eigensolve; the
adjacent-layer inner products) is a job of ``Jobs``: with a budget of two or more it runs on one of
``budget`` worker threads as soon as the backward has produced its output gradient, while the
backward goes on; with a budget of one it runs at once on the calling thread. Either way a job's
BLAS and LAPACK calls run on one thread (MKL's thread-local setting; numpy's OpenBLAS held at one
thread during a run) in the same order, so the jobs' results do not depend on the budget, the thread
count or how a BLAS splits its work: inline and pooled runs are equal bit for bit. (The model's own
linear products take the plan's kernel for the budget: products.py.) One thread per
call also keeps its speed when another process shares the cores (a threaded MKL solve collapses
then: barrier spinning).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import torch

QUEUED = 64  # jobs the workers may still owe a batch (their output gradients stay in memory meanwhile)


def cpu_budget() -> int:
    """Cores this process may use: affinity, cgroup quota and OMP_NUM_THREADS, the smallest."""
    limits = [len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1]
    quota = cgroup_quota()
    if quota:
        limits.append(quota)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        limits.append(int(omp))
    return max(1, min(limits))


def cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs allowed by a cgroup quota (v2 cpu.max, v1 cfs), rounded up; None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return max(1, math.ceil(quota / period)) if quota > 0 else None
    except (OSError, ValueError):
        return None


def set_budget(threads: int | None = None) -> int:
    """Give torch's intra-op pool ``threads`` (default: ``cpu_budget()``); return the number."""
    n = threads or cpu_budget()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def budget() -> int:
    """The thread budget in force: torch's intra-op setting."""
    return torch.get_num_threads()


@functools.cache
def mkl_local_setter():
    """MKL's thread-local thread count (``mkl_set_num_threads_local``) from torch's own MKL, or None."""
    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        setter = lib.MKL_Set_Num_Threads_Local  # the C interface (the lower-case symbol takes a pointer)
    except (OSError, AttributeError):
        return None
    setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
    return setter


@contextlib.contextmanager
def one_thread():
    """torch's LAPACK/BLAS calls in the body on one thread, for this thread only (MKL's thread-local
    setting), so a job never changes the threads of the backward running beside it."""
    setter = mkl_local_setter()
    if setter is None:
        yield
        return
    previous = setter(1)
    try:
        yield
    finally:
        setter(previous)


@contextlib.contextmanager
def numpy_single_threaded():
    """numpy's own BLAS/LAPACK (OpenBLAS in its wheels) on one thread for the body, restored after;
    torch's pool and other libraries are left alone."""
    from threadpoolctl import ThreadpoolController

    import numpy

    home = str(Path(numpy.__file__).resolve().parent.parent)
    mine = [lib for lib in ThreadpoolController().lib_controllers if str(lib.filepath).startswith(home)
            and "numpy" in str(lib.filepath)]
    saved = [lib.num_threads for lib in mine]
    for lib in mine:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(mine, saved):
            lib.set_num_threads(n)


def workers() -> int:
    """Worker threads of the executor: the budget, or 0 (jobs inline) with a budget of one or without
    MKL's thread-local setting (a job could not keep to one thread). The kernel plan may still run the
    jobs inline where that timed faster (compute.py)."""
    n = budget()
    return n if n > 1 and mkl_local_setter() is not None else 0


def spread(fn, items) -> None:
    """``fn(item)`` for every item, shared by ``budget()`` worker threads (one at a time on this thread
    with a budget of one); returns when all are done, re-raising the first error."""
    n = budget()
    if n < 2:
        for item in items:
            fn(item)
        return
    list(_pool(n).map(fn, items))


@functools.cache
def _pool(size: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(size, thread_name_prefix="layergrad-job")


def _single_threaded(job):
    with one_thread():
        return job()


class Jobs:
    """The per-target jobs of one batch: submitted in order, at most ``QUEUED`` owed at a time (the
    submitter waits for the oldest), collected after the backward. ``size`` workers (``workers()``
    by default; 0: every job runs at once on the caller)."""

    def __init__(self, size: int | None = None, queued: int = QUEUED):
        self.size = workers() if size is None else size
        self.queued = queued
        self._owed: deque[Future] = deque()
        self._lock = threading.Lock()

    def submit(self, job) -> None:
        if not self.size:
            _single_threaded(job)
            return
        with self._lock:
            self._owed.append(_pool(self.size).submit(_single_threaded, job))
        self._wait_until(self.queued)

    def collect(self) -> None:
        """Wait for every job, re-raising the first error."""
        self._wait_until(0)

    def cancel(self) -> None:
        """Drop what has not started, wait for what has (an abandoned batch: errors are dropped too)."""
        with self._lock:
            owed, self._owed = list(self._owed), deque()
        for job in owed:
            job.cancel()
        wait(owed)

    def _wait_until(self, owed: int) -> None:
        while True:
            with self._lock:
                if len(self._owed) <= owed:
                    return
                oldest = self._owed.popleft()
            oldest.result()
