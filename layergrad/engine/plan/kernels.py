"""Decision: which library multiplies each plain linear layer of the model (its own layers and LM head) —
torch's BLAS, oneDNN's or numpy's (engine/products.py) — per shape, row bucket and thread budget, timed as a
run calls it."""

from __future__ import annotations

import math
import time

import torch

from layergrad.engine.plan.cache import cached_or_timed, timing_enabled
from layergrad.engine.plan.grid import pick
from layergrad.engine.plan.state import STATE, pushed
from layergrad.engine.plan.timing import random_matrix

PRODUCT_ROWS = (64, 512)  # products are planned from 64 rows on (torch below), timed at powers of 2 up to 512
PRODUCT_WORK = 1 << 24  # ... from 16M multiply-adds on
PRODUCT_WEIGHTS = 1 << 16  # ... and for weights of 65,536 entries or more (tiny test models' products keep torch's)


def product_kernels(model, ids: torch.Tensor, keep: int) -> dict:
    """{module: kernel} for each plain linear layer of ``model`` (products.py) in a forward pass over the (B, T)
    ``ids``: the fastest at B·T rows, the LM head's at its B·``keep`` kept positions (0: all T)."""
    from layergrad.engine.products import plain_linears

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    rows, head_rows = ids.numel(), ids.shape[0] * (keep or ids.shape[1])
    return {mod: product_kernel(head_rows if mod is head else rows, mod.in_features, mod.out_features)
            for mod in plain_linears(model)}


def planned(rows: int, d_in: int, d_out: int) -> bool:
    """Whether a product is large enough to be planned (smaller ones keep torch's, never timed)."""
    return rows >= PRODUCT_ROWS[0] and rows * d_in * d_out >= PRODUCT_WORK and d_in * d_out >= PRODUCT_WEIGHTS


def product_kernel(rows: int, d_in: int, d_out: int, timing: bool = True) -> str:
    """The kernel of a (rows × d_in) · (d_in × d_out) product on a CPU: 'torch', 'onednn' or 'numpy', the
    fastest at the nearest power of two of rows (at most ``PRODUCT_ROWS[1]``; the ratio holds above) on the
    thread budget, timed once per machine and budget and cached; torch for small products, under
    LAYERGRAD_PLAN=rules, and without ``timing`` for a size not timed before."""
    if STATE.forced_products:
        return STATE.forced_products[-1]
    if not planned(rows, d_in, d_out) or not timing_enabled():
        return "torch"
    from layergrad.engine.threads import budget

    g = product_rows(rows)
    entry = cached_or_timed("products", product_key(g, d_in, d_out, budget()), lambda: time_product(g, d_in, d_out),
                            timing)
    return entry["choice"] if entry else "torch"


def product_rows(rows: int) -> int:
    return min(2 ** math.ceil(math.log2(rows)), PRODUCT_ROWS[1])


def product_key(rows: int, d_in: int, d_out: int, threads: int) -> str:
    return f"{rows} rows|{d_in}->{d_out}|{threads} threads"


def forced_products(kernel: str):
    """Every plain linear layer takes ``kernel`` ('torch', 'onednn' or 'numpy') in the body, whatever its size."""
    return pushed(STATE.forced_products, kernel)


def time_product(rows: int, d_in: int, d_out: int) -> dict:
    """A linear layer's forward and backward products (rows × d_in · d_in × d_out, then rows × d_out · d_out ×
    d_in) by every kernel of products.py, as a run calls them (torch and oneDNN on torch's threads, numpy
    spread over the workers); the fastest of two rounds after a warm-up, alternating, each call repeated to
    20 ms. A kernel that fails here is left out."""
    from layergrad.engine import products
    from layergrad.engine.threads import numpy_single_threaded

    x, w, g = random_matrix(rows, d_in), random_matrix(d_out, d_in, seed=1), random_matrix(rows, d_out, seed=2)
    calls = {name: (lambda name=name: tuple(f(a, w) for f, a in zip(products.PRODUCTS[name], (x, g))))
             for name in products.kernels() if name != "torch"}
    calls = {"torch": lambda: (x @ w.T, g @ w), **calls}
    times, repeats = dict.fromkeys(calls, math.inf), dict.fromkeys(calls, 1)
    with numpy_single_threaded():
        for round_ in range(3):
            for name, call in list(calls.items()):
                start = time.perf_counter()
                try:
                    for _ in range(repeats[name]):
                        call()
                except RuntimeError:  # a kernel this build or CPU cannot run
                    del calls[name], times[name]
                    continue
                ms = (time.perf_counter() - start) * 1e3 / repeats[name]
                if round_:
                    times[name] = min(times[name], ms)
                else:
                    repeats[name] = max(1, math.ceil(20 / max(ms, 1e-3)))
    return {"choice": pick(times, "torch"), "rows": rows, "ms": {k: round(t, 3) for k, t in times.items()}}
