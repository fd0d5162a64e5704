"""The timing harness: candidates timed side by side on random matrices, as the jobs run them (on one
thread, on every worker at once), and the candidates of each step of a spectral recipe."""

from __future__ import annotations

import math
import time

import torch

from layergrad.engine.plan.grid import pick
from layergrad.engine.plan.state import STATE
from layergrad.engine.spectra import CORE_DTYPE, input_factor, short_gram, triangular_product

EIG_STACK = 4  # matrices per timed eigensolver call (the times are per matrix)


def best_ms(candidates: dict, rounds: int = 3) -> dict[str, float]:
    """{name: fastest milliseconds} of zero-argument calls, alternating between them (noise hits all
    alike); fewer rounds when one call takes long. Each call runs as the jobs run: on one thread, on
    every worker at once (``workers()`` copies side by side share the caches and the memory bus)."""
    from concurrent.futures import ThreadPoolExecutor

    from layergrad.engine.threads import numpy_single_threaded, one_thread, workers

    copies = max(1, workers())

    def single(call):
        with one_thread():
            call()

    best = dict.fromkeys(candidates, math.inf)
    with numpy_single_threaded(), ThreadPoolExecutor(copies) as pool:
        def timed(call) -> float:
            start = time.perf_counter()
            list(pool.map(single, [call] * copies))
            return time.perf_counter() - start

        for name, call in candidates.items():  # warm-up: kernels, first touch; also sets the round count
            if timed(call) > 0.2:
                rounds = 1
        for _ in range(rounds):
            for name, call in candidates.items():
                best[name] = min(best[name], timed(call) * 1e3)
    return best


def step(name: str, *sizes: int) -> dict[str, float]:
    """Milliseconds of each candidate of one step at these sizes (memoised in this process)."""
    key = (name, *sizes)
    if key not in STATE.steps:
        per_call = EIG_STACK if name == "eig" else 1
        STATE.steps[key] = {k: v / per_call for k, v in best_ms(STEPS[name](*sizes)).items()}
    return STATE.steps[key]


def random_matrix(*shape, dtype=torch.float32, seed=0):
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def factor_candidates(t: int, w: int) -> dict:
    x = random_matrix(1, t, w)
    out = {"qr": lambda: input_factor(x, "qr")}
    if t <= w:  # Cholesky needs X Xᵀ of full rank
        out["cholesky"] = lambda: input_factor(x, "cholesky")
    return out


def product_candidates(k: int, t: int, w: int) -> dict:
    r, m = random_matrix(1, k, t).triu(), random_matrix(1, t, w, seed=1)
    return {"plain": lambda: triangular_product(r, m, "plain"), "blocked": lambda: triangular_product(r, m, "blocked")}


def gram_candidates(s: int, long: int) -> dict:
    a = random_matrix(1, s, long, dtype=CORE_DTYPE)
    return {"plain": lambda: short_gram(a, "plain"), "blocked": lambda: short_gram(a, "blocked")}


def dense_candidates(t: int, p: int, d: int) -> dict:
    x, delta = random_matrix(1, t, d), random_matrix(1, t, p, seed=1)
    return {"plain": lambda: delta.transpose(-1, -2) @ x}


def small_candidates(a: int, t: int, b: int) -> dict:
    left, right = random_matrix(1, a, t).triu(), random_matrix(1, b, t, seed=1).triu()
    return {"plain": lambda: (left @ right.transpose(-1, -2)).to(CORE_DTYPE)}


def eig_candidates(n: int) -> dict:
    from layergrad.engine import solvers

    a = random_matrix(EIG_STACK, n, n, dtype=CORE_DTYPE)
    stack = a @ a.transpose(-1, -2)
    return {name: (lambda name=name: solvers.eigenvalues(stack, name)) for name in ("torch", "numpy")}


STEPS = {"factor": factor_candidates, "product": product_candidates, "gram": gram_candidates,
         "dense": dense_candidates, "small": small_candidates, "eig": eig_candidates}


def gram_step(a: int, b: int) -> tuple[str, float]:
    """The Gram of an a×b matrix: (choice, ms)."""
    times = step("gram", min(a, b), max(a, b))
    choice = pick(times, "plain")
    return choice, times[choice]


def spectra_job(x, delta) -> None:
    """One job of the core route (the executor's timing)."""
    from layergrad.engine import solvers

    solvers.eigenvalues(short_gram(triangular_product(input_factor(x), delta).to(CORE_DTYPE)), "torch")
