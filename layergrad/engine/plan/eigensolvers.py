"""Decision: which eigensolver backend runs a stack of n×n Grams — timed per size bucket on a CPU (torch's
LAPACK or numpy's) and on a GPU (torch, host, cupy); the one place that resolves ``solver='auto'``."""

from __future__ import annotations

import torch

from layergrad.engine.plan.cache import cached_or_timed, timing_enabled
from layergrad.engine.plan.grid import SMALL, bucket, pick, representative
from layergrad.engine.plan.timing import EIG_STACK, best_ms, random_matrix, step
from layergrad.engine.spectra import CORE_DTYPE

SOLVER_MARGIN = 0.95  # numpy replaces torch as eigensolver on a CPU when at least 5% faster


def solver(device: torch.device, n: int, timing: bool = True) -> str:
    """The fastest eigensolver backend for size-``n`` stacks on ``device`` (timed once, cached; without
    ``timing`` a size not timed before takes the rule: torch on a CPU, host from 32 on a GPU)."""
    from layergrad.engine.solvers import rule

    if (device.type == "cpu" and n < SMALL) or not timing_enabled():
        return rule(device.type == "cuda", n)
    section = "solver" if device.type == "cpu" else f"solver {torch.cuda.get_device_name(device)}"
    entry = cached_or_timed(section, str(bucket(n)), lambda: time_solvers(device, bucket(n)), timing)
    return entry["choice"] if entry else rule(device.type == "cuda", n)


def eigensolver(asked: str, planned: str, matrices: torch.Tensor) -> tuple[str, str]:
    """(backend, CPU LAPACK) for a stack: the ``asked`` solver (``--solver``), else the recipe's ``planned``
    one; 'auto' and 'host' resolved to this machine's choices for the stack's size (a size not timed before
    the run takes the rule rather than timing while the cores are busy)."""
    solver_name = asked if asked != "auto" else planned
    n = matrices.shape[-1]
    cpu = solver_name if solver_name in ("torch", "numpy") else solver_choice(torch.device("cpu"), n)
    if solver_name != "auto" or not matrices.is_cuda:
        return solver_name if solver_name != "auto" else cpu, cpu
    return solver_choice(matrices.device, n), cpu


def solver_choice(device: torch.device, n: int) -> str:
    return solver(device, n, timing=False)


def solver_time(n: int) -> tuple[str, float]:
    """(the eigensolver this machine uses at size n, its ms at n)."""
    name = solver(torch.device("cpu"), n)
    return name, step("eig", n)[name]


def time_solvers(device: torch.device, size: int) -> dict:
    """Time every eigensolver backend on the same random SPD matrices (n = 3/4 of the bucket's top)."""
    from layergrad.engine import solvers

    n = representative(size)
    if device.type == "cpu":
        times = step("eig", n)
        return {"choice": pick(times, "torch", SOLVER_MARGIN), "n": n, "ms": {k: round(v, 3) for k, v in times.items()}}
    a = random_matrix(EIG_STACK, n, n, dtype=CORE_DTYPE).to(device)
    stack = a @ a.transpose(-1, -2)

    def synchronized(name):
        def call():
            solvers.eigenvalues(stack, name, solver_choice(torch.device("cpu"), n))
            torch.cuda.synchronize(device)
        return call

    times = {k: v / EIG_STACK for k, v in best_ms({name: synchronized(name) for name in solvers.candidates(device)}).items()}
    return {"choice": min(times, key=times.get), "n": n, "ms": {k: round(v, 3) for k, v in times.items()}}
