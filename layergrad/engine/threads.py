"""One CPU thread budget for the forward/backward, the eigensolver pool and small LAPACK calls.

The budget is ``--threads N`` if given, else the cores this process may use: its CPU affinity,
a cgroup CPU quota (containers, SLURM) and ``OMP_NUM_THREADS``, whichever is smallest. Small
LAPACK calls (the QR factors of a sample's inputs, the eigensolves) run on one thread each, spread
over the budget's threads by the solver pool: MKL's QR on two threads was 1.3x slower alone and 7x
slower beside a second busy process (barrier spinning), its eigensolver up to 100x, while one
thread per call keeps its speed under contention.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import threading
from pathlib import Path

import torch


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


_lock = threading.Lock()
_single = {"depth": 0, "saved": 1}


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
def one_thread(active: bool = True):
    """Run the body's LAPACK calls on one thread; a no-op when not ``active``.

    With torch's MKL the setting is local to the calling thread (``mkl_set_num_threads_local``),
    so the solver pool and the hooks' QR never change the threads of a forward/backward running
    beside them: overlapped and synchronous runs give the same numbers. Without it, torch's
    process-wide setting is lowered, shared by a counter (the last user out restores it).
    """
    if not active:
        yield
        return
    setter = mkl_local_setter()
    if setter is not None:
        previous = setter(1)
        try:
            yield
        finally:
            setter(previous)
        return
    with _lock:
        if _single["depth"] == 0:
            _single["saved"] = torch.get_num_threads()
            if _single["saved"] != 1:
                torch.set_num_threads(1)
        _single["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _single["depth"] -= 1
            if _single["depth"] == 0 and _single["saved"] != 1:
                torch.set_num_threads(_single["saved"])


def budget() -> int:
    """The thread budget in force (torch's intra-op setting outside ``one_thread``)."""
    with _lock:
        return _single["saved"] if _single["depth"] else torch.get_num_threads()
