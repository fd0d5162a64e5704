"""The kernel plan: which way of computing each target's σ² runs fastest on this machine (FFTW's wisdom).

Which kernel wins depends on the CPU: on an AMD EPYC (Zen 5) blocked products and Grams are 1.5x faster
than plain ones and numpy's LAPACK solves n = 576 in 11 ms where torch's takes 15; on an Intel Xeon with
AMX the blocked products, the extra QRs and a route chosen by flop counts made a Detailed-CoT sample
twice as slow as November's plain code. So on a CPU nothing is hard-coded. For every cell — a target
shape p×d, the number of targets reading its input, a bucket of sample lengths — the plan times each
step's candidates on random matrices of that size, on one thread as the jobs run them:

- the factored side of the core route: R_X·Δ (R_X shared by the targets reading X), R_Δ·X, R_Δ·R_Xᵀ,
  or the dense route (G itself);
- the factors: Householder QR or Cholesky; the products R·M: plain or blocked (R's zero triangle
  skipped); the fp64 Grams: plain or blocked (the upper block triangle only);
- the eigensolver per size: torch's LAPACK or numpy's;
- the executor per thread budget: jobs on worker threads, or inline on the calling thread;
- the library of each linear layer's product (the model's own layers and LM head) per shape, row
  bucket and thread budget, timed as a run calls it, on all its threads: torch's BLAS, oneDNN's or
  numpy's (products.py).

Each step's default is the simple one (QR, plain, plain, torch, the route of the flop-count rule in
spectra.py, workers); another candidate replaces it only when it is at least 10% faster (noise must not
flip a choice). Timed once per machine and size bucket before a run's first sample, cached in the user
cache (``plan.json``, under a file lock), keyed by the CPU model, torch, numpy and layergrad versions and
the kernel settings ``ATEN_CPU_CAPABILITY`` / ``MKL_ENABLE_INSTRUCTIONS``; a deleted or unreadable file is
timed again, never an error. ``LAYERGRAD_PLAN=rules`` skips timing (the defaults). On a GPU the
recipe is the rule (spectra.rule_recipe) and the eigensolver is timed (torch, host, cupy).
``layergrad tune`` times a model's cells explicitly and prints the plan; every run records the cells it
used in run.json. Every candidate gives the same σ² to the stated tolerance (tests/engine/test_plan.py
holds each to an fp64 SVD), so a plan changes speed, never a result beyond it.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import platform
import threading
import time
from contextlib import contextmanager
import numpy as np
import torch

from layergrad.engine.spectra import CORE_DTYPE, Recipe, input_factor, rule_recipe, short_gram, triangular_product

FORMAT = 4  # of the cached entries; part of the machine key, so an older cache is never misread
SMALL = 32  # below this size candidates do not differ: the defaults, never timed
MARGIN = 0.9  # a candidate replaces the default only when it takes at most 90% of its time
SOLVER_MARGIN = 0.95  # numpy replaces torch as eigensolver on a CPU when at least 5% faster
VARIANTS = {"core R_X·Δ": ("core", "x"), "core R_Δ·X": ("core", "delta"), "core R_Δ·R_Xᵀ": ("core", "both"),
            "dense G": ("dense", "x")}
GPU_SOLVER_RULES = [(SMALL, "torch"), (None, "host")]  # without timing on a GPU
_memo: dict[tuple, dict] = {}  # (machine, section, key) -> entry, this process
_recipes: dict[tuple, Recipe] = {}  # (machine, t, p, d, sharing) -> the recipe chosen, this process
_steps: dict[tuple, dict] = {}  # step timings of this process: (step, *sizes) -> {candidate: ms}
_lock = threading.RLock()
_file_locks: dict = {}  # cache path -> its FileLock (one object per path: re-entrant)
_forced: list[Recipe] = []  # plan.forced(recipe): every cell takes it (tests, benchmarks/exactness.py)
_forced_products: list[str] = []  # plan.forced_products(kernel): every plain linear layer takes it (tests)
PRODUCT_ROWS = (64, 512)  # products are planned from 64 rows on (torch below), timed at powers of 2 up to 512
PRODUCT_WORK = 1 << 24  # ... from 16M multiply-adds on
PRODUCT_WEIGHTS = 1 << 16  # ... and for weights of 65,536 entries or more (tiny test models' products keep torch's)


def timing_enabled() -> bool:
    return os.environ.get("LAYERGRAD_PLAN", "").lower() not in ("rules", "off", "0")


# ----------------------------------------------------------------------------- buckets

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


# ----------------------------------------------------------------------------- the choices

def recipe(t: int, p: int, d: int, *, sharing: int = 1, device: str = "cpu", timing: bool = True) -> Recipe:
    """How to compute the σ² of a p×d target at T positions read by ``sharing`` targets on ``device``.
    ``timing=False`` (inside a run, where the cores are busy): a cell not timed before takes the rule."""
    if _forced:
        return _forced[-1]
    sharing = max(sharing, 1)
    if device != "cpu" or not timing_enabled() or t < SMALL:
        return rule_recipe(t, p, d, sharing=sharing, device=device)
    key = (machine_key(), t, p, d, sharing)
    if key not in _recipes:
        chosen = choose(t, p, d, sharing, timing)
        if chosen is None:
            return rule_recipe(t, p, d, sharing=sharing, device=device)
        _recipes[key] = chosen[0]
    return _recipes[key]


def choose(t: int, p: int, d: int, sharing: int, timing: bool = True) -> tuple[Recipe, str, dict] | None:
    """(recipe, variant, {variant: ms}) at length t: the variants' times interpolated in log T between the
    grid points around t; the rule's variant unless another takes at most ``MARGIN`` of its time. None
    when a grid point is not timed and ``timing`` is off."""
    lo, hi = around(t)
    entries = [cached_or_timed("cells", cell_key(g, p, d, sharing), lambda g=g: time_cell(g, p, d, sharing), timing)
               for g in (lo, hi)]
    if None in entries:
        return None
    w = math.log(t / lo) / math.log(hi / lo) if hi > lo else 0.0
    names = [n for n in VARIANTS if all(n in e["variants"] for e in entries)]
    ms = {n: (1 - w) * entries[0]["variants"][n]["ms"] + w * entries[1]["variants"][n]["ms"] for n in names}
    default = variant_of(rule_recipe(t, p, d, sharing=sharing))
    chosen = pick(ms, default if default in ms else min(ms, key=ms.get))
    nearer = entries[0] if w < 0.5 else entries[1]
    return Recipe(**nearer["variants"][chosen]["recipe"]), chosen, ms


def variant_of(r: Recipe) -> str:
    return next(n for n, (route, side) in VARIANTS.items() if route == r.route and (route == "dense" or side == r.factor))


def solver(device: torch.device, n: int, timing: bool = True) -> str:
    """The fastest eigensolver backend for size-``n`` stacks on ``device`` (timed once, cached; without
    ``timing`` a size not timed before takes the rule: torch on a CPU, host above 32 on a GPU)."""
    rule = "torch" if device.type == "cpu" else next(s for limit, s in GPU_SOLVER_RULES if limit is None or n < limit)
    if (device.type == "cpu" and n < SMALL) or not timing_enabled():
        return rule
    section = "solver" if device.type == "cpu" else f"solver {torch.cuda.get_device_name(device)}"
    entry = cached_or_timed(section, str(bucket(n)), lambda: time_solvers(device, bucket(n)), timing)
    return entry["choice"] if entry else rule


def eigensolver(solver: str, matrices: torch.Tensor) -> tuple[str, str]:
    """(backend, CPU LAPACK) for a stack: 'auto' and 'host' resolved to this machine's choices for its
    size (a size not timed before the run takes the rule rather than timing while the cores are busy)."""
    n = matrices.shape[-1]
    cpu = solver if solver in ("torch", "numpy") else solver_choice(torch.device("cpu"), n)
    if solver != "auto" or not matrices.is_cuda:
        return solver if solver != "auto" else cpu, cpu
    return solver_choice(matrices.device, n), cpu


def solver_choice(device: torch.device, n: int) -> str:
    return solver(device, n, timing=False)


def executor(budget: int) -> str:
    """'workers' (jobs on ``budget`` one-thread workers while the backward runs) or 'inline' (each job at
    once on the calling thread): the faster on a stack of jobs, timed once per machine and budget."""
    if budget < 2 or not timing_enabled():
        return "workers" if budget >= 2 else "inline"
    return cached_or_timed("executor", f"{budget} threads", lambda: time_executor(budget))["choice"]


def product_kernels(model, ids: torch.Tensor, keep: int) -> dict:
    """{module: kernel} for each plain linear layer of ``model`` (products.py) in a forward pass over the (B, T)
    ``ids``: the fastest at B·T rows, the LM head's at its B·``keep`` kept positions (0: all T)."""
    from layergrad.engine.products import plain_linears

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    rows, head_rows = ids.numel(), ids.shape[0] * (keep or ids.shape[1])
    return {mod: product_kernel(head_rows if mod is head else rows, mod.in_features, mod.out_features)
            for mod in plain_linears(model)}


def product_kernel(rows: int, d_in: int, d_out: int, timing: bool = True) -> str:
    """The kernel of a (rows × d_in) · (d_in × d_out) product on a CPU: 'torch', 'onednn' or 'numpy', the
    fastest at the nearest power of two of rows (at most ``PRODUCT_ROWS[1]``; the ratio holds above) on the
    thread budget, timed once per machine and budget and cached; torch for small products, under
    LAYERGRAD_PLAN=rules, and without ``timing`` for a size not timed before."""
    if _forced_products:
        return _forced_products[-1]
    if rows < PRODUCT_ROWS[0] or rows * d_in * d_out < PRODUCT_WORK or d_in * d_out < PRODUCT_WEIGHTS \
            or not timing_enabled():
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
    return pushed(_forced_products, kernel)


def forced(choice: Recipe):
    """Every cell takes ``choice`` in the body (the candidates' exactness tests and benchmarks)."""
    return pushed(_forced, choice)


@contextmanager
def pushed(stack: list, value):
    """``value`` on top of ``stack`` in the body."""
    stack.append(value)
    try:
        yield
    finally:
        stack.pop()


def candidates() -> list[Recipe]:
    """Every recipe the plan may choose on a CPU (each is held to the same fp64 reference by the tests)."""
    sides = [("core", side) for side in ("x", "delta", "both")]
    return [Recipe(route, side, method, product, gram, solver)
            for (route, side), method, product, gram, solver in itertools.product(
                sides, ("qr", "cholesky"), ("plain", "blocked"), ("plain", "blocked"), ("torch", "numpy"))] + \
           [Recipe("dense", "x", "qr", "plain", gram, solver)
            for gram, solver in itertools.product(("plain", "blocked"), ("torch", "numpy"))]


def used(device, cells) -> dict:
    """The plan of a run, for run.json: the machine, and the entry (choice and the times it chose on) of
    every cell, eigensolver size and executor budget it consults."""
    device = torch.device(device)
    out = {"machine": machine_key() if device.type == "cpu" else torch.cuda.get_device_name(device)}
    if not timing_enabled() or _forced:
        return {**out, "mode": "forced" if _forced else "rules (LAYERGRAD_PLAN)"}
    with _lock:
        mine = {(section, key): entry for (machine, section, key), entry in _memo.items() if machine == machine_key()}
    wanted = {("cells", cell_key(g, p, d, max(s, 1))) for t, p, d, s in cells if t >= SMALL for g in around(t)}
    wanted |= {(section, str(bucket(n))) for t, p, d, s in cells for n in (min(t, p, d), min(p, d))
               for section in ("solver", f"solver {out['machine']}")}
    for (section, key), entry in sorted(mine.items()):
        if (section, key) in wanted or section in ("executor", "products"):
            out.setdefault(section, {})[key] = entry
    return out


# ----------------------------------------------------------------------------- cache

def machine_key() -> str:
    """What a plan is valid for: the CPU, the libraries and the kernel settings that pick their code."""
    return _machine_key(os.environ.get("ATEN_CPU_CAPABILITY"), os.environ.get("MKL_ENABLE_INSTRUCTIONS"))


@functools.cache
def _machine_key(*settings) -> str:
    from layergrad import __version__

    kernels = ",".join(f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
                       if os.environ.get(k))
    return (f"{cpu_name()}|torch {torch.__version__}|numpy {np.__version__}|layergrad {__version__} plan {FORMAT}"
            + (f"|{kernels}" if kernels else ""))


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_path():
    """$LAYERGRAD_PLAN_FILE, else plan.json in layergrad's cache (the test suite keeps its own file, so
    a plan timed beside busy test workers never reaches a user's runs)."""
    from pathlib import Path

    from layergrad.models import cache_dir

    return Path(os.environ["LAYERGRAD_PLAN_FILE"]) if os.environ.get("LAYERGRAD_PLAN_FILE") else cache_dir() / "plan.json"


def cached_or_timed(section: str, key: str, timer, timing: bool = True) -> dict | None:
    """This machine's entry for ``key``: from this process, else from the cache file, else timed now (one
    process at a time, under a file lock) and written back; None when it is missing and ``timing`` is off."""
    memo_key = (machine_key(), section, key)
    with _lock:
        if memo_key in _memo:
            return _memo[memo_key]
        with file_lock() as writable:
            table = load_cache()
            entry = table.get(memo_key[0], {}).get(section, {}).get(key)
            if entry is None:
                if not timing:
                    return None
                entry = timer()
                table = load_cache()  # the timer may have added entries of its own (eigensolvers)
                table.setdefault(memo_key[0], {}).setdefault(section, {})[key] = entry
                if writable:
                    save_cache(table)
        _memo[memo_key] = entry
        return entry


@contextmanager
def file_lock():
    """The cache file's lock, re-entrant in this process (a cell's timing asks for eigensolver entries);
    yields whether the cache can be written (a read-only cache: timed for this process only)."""
    from filelock import FileLock

    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = _file_locks.setdefault(str(path), FileLock(str(path) + ".lock"))
        lock.acquire()
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def load_cache() -> dict:
    try:
        table = json.loads(cache_path().read_text())
        return table if isinstance(table, dict) else {}
    except (OSError, ValueError):  # missing or corrupt: timed again
        return {}


def save_cache(table: dict) -> None:
    path = cache_path()
    try:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, indent=1, ensure_ascii=False))
        tmp.replace(path)
    except OSError:  # a read-only cache only costs a new timing next time
        pass


def forget(machine: str | None = None) -> None:
    """Drop this machine's plan (``layergrad tune --retime``): from this process and from the cache."""
    machine = machine or machine_key()
    with _lock:
        for key in [k for k in _memo if k[0] == machine]:
            del _memo[key]
        _steps.clear()
        _recipes.clear()
        table = load_cache()
        if table.pop(machine, None) is not None:
            save_cache(table)


def prepare(device, cells) -> dict:
    """Time every ``(t, p, d, sharing)`` cell a run will meet and their eigensolver sizes (before its
    first forward pass, while nothing else runs); the run's plan (``used``)."""
    device = torch.device(device)
    for t, p, d, sharing in sorted(set(cells)):
        if device.type == "cpu":
            recipe(t, p, d, sharing=sharing)
        for n in {min(t, p, d), min(p, d)}:
            solver(device, n)
    return used(device, cells)


# ----------------------------------------------------------------------------- timing

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


def pick(times: dict[str, float], default: str, margin: float = MARGIN) -> str:
    """The default, unless another candidate takes at most ``margin`` of its time (the fastest of those)."""
    fastest = min(times, key=times.get)
    return fastest if times[fastest] <= margin * times[default] else default


def step(name: str, *sizes: int) -> dict[str, float]:
    """Milliseconds of each candidate of one step at these sizes (memoised in this process)."""
    key = (name, *sizes)
    if key not in _steps:
        per_call = EIG_STACK if name == "eig" else 1
        _steps[key] = {k: v / per_call for k, v in best_ms(STEPS[name](*sizes)).items()}
    return _steps[key]


def _random(*shape, dtype=torch.float32, seed=0):
    return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def factor_candidates(t: int, w: int) -> dict:
    x = _random(1, t, w)
    out = {"qr": lambda: input_factor(x, "qr")}
    if t <= w:  # Cholesky needs X Xᵀ of full rank
        out["cholesky"] = lambda: input_factor(x, "cholesky")
    return out


def product_candidates(k: int, t: int, w: int) -> dict:
    r, m = _random(1, k, t).triu(), _random(1, t, w, seed=1)
    return {"plain": lambda: triangular_product(r, m, "plain"), "blocked": lambda: triangular_product(r, m, "blocked")}


def gram_candidates(s: int, long: int) -> dict:
    a = _random(1, s, long, dtype=CORE_DTYPE)
    return {"plain": lambda: short_gram(a, "plain"), "blocked": lambda: short_gram(a, "blocked")}


def dense_candidates(t: int, p: int, d: int) -> dict:
    x, delta = _random(1, t, d), _random(1, t, p, seed=1)
    return {"plain": lambda: delta.transpose(-1, -2) @ x}


def small_candidates(a: int, t: int, b: int) -> dict:
    left, right = _random(1, a, t).triu(), _random(1, b, t, seed=1).triu()
    return {"plain": lambda: (left @ right.transpose(-1, -2)).to(CORE_DTYPE)}


EIG_STACK = 4  # matrices per timed eigensolver call (the times are per matrix)


def eig_candidates(n: int) -> dict:
    from layergrad.engine import solvers

    a = _random(EIG_STACK, n, n, dtype=CORE_DTYPE)
    stack = a @ a.transpose(-1, -2)
    return {name: (lambda name=name: solvers.eigenvalues(stack, name)) for name in ("torch", "numpy")}


STEPS = {"factor": factor_candidates, "product": product_candidates, "gram": gram_candidates,
         "dense": dense_candidates, "small": small_candidates, "eig": eig_candidates}


def gram_step(a: int, b: int) -> tuple[str, float]:
    """The Gram of an a×b matrix: (choice, ms)."""
    times = step("gram", min(a, b), max(a, b))
    choice = pick(times, "plain")
    return choice, times[choice]


def time_cell(t: int, p: int, d: int, sharing: int) -> dict:
    """Time one cell at length t (a grid point): every variant, each from its steps' fastest candidates
    (``MARGIN`` against the simple default of each step)."""
    kx, kd = min(t, d), min(t, p)
    fx, fd = step("factor", t, d), step("factor", t, p)
    mx, md = pick(fx, "qr"), pick(fd, "qr")
    eig = {n: solver_time(n) for n in {min(kx, p), min(kd, d), min(kd, kx), min(p, d)}}
    variants = {}

    def add(name, total, **choice):
        variants[name] = {"ms": round(total, 4), "recipe": Recipe(*VARIANTS[name], **choice).to_dict()}

    px = step("product", kx, t, p)
    prod_x = pick(px, "plain")
    gram, ms = gram_step(kx, p)
    add("core R_X·Δ", fx[mx] / sharing + px[prod_x] + ms + eig[min(kx, p)][1], method=mx, product=prod_x, gram=gram,
        solver=eig[min(kx, p)][0])
    pd_ = step("product", kd, t, d)
    prod_d = pick(pd_, "plain")
    gram, ms = gram_step(kd, d)
    add("core R_Δ·X", fd[md] + pd_[prod_d] + ms + eig[min(kd, d)][1], method=md, product=prod_d, gram=gram,
        solver=eig[min(kd, d)][0])
    gram, ms = gram_step(kd, kx)  # one method for both factors: X's (Cholesky falls back to QR where it cannot)
    add("core R_Δ·R_Xᵀ", fx[mx] / sharing + fd.get(mx, fd["qr"]) + step("small", kd, t, kx)["plain"] + ms
        + eig[min(kd, kx)][1], method=mx, gram=gram, solver=eig[min(kd, kx)][0])
    gram, ms = gram_step(p, d)
    add("dense G", step("dense", t, p, d)["plain"] + ms + eig[min(p, d)][1], gram=gram, solver=eig[min(p, d)][0])
    return {"timed_at": t, "variants": variants}


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
    a = torch.randn(EIG_STACK, n, n, dtype=CORE_DTYPE, device=device)
    stack = a @ a.transpose(-1, -2)

    def synchronized(name):
        def call():
            solvers.eigenvalues(stack, name, solver_choice(torch.device("cpu"), n))
            torch.cuda.synchronize(device)
        return call

    times = {k: v / EIG_STACK for k, v in best_ms({name: synchronized(name) for name in solvers.candidates(device)}).items()}
    return {"choice": min(times, key=times.get), "n": n, "ms": {k: round(v, 3) for k, v in times.items()}}


def time_executor(budget: int) -> dict:
    """A stack of 4·budget jobs (the core route at T = 256 on 576×576) inline vs on the workers."""
    from layergrad.engine.threads import Jobs

    x, delta = _random(1, 256, 576), _random(1, 256, 576, seed=1)
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


def time_product(rows: int, d_in: int, d_out: int) -> dict:
    """A linear layer's forward and backward products (rows × d_in · d_in × d_out, then rows × d_out · d_out ×
    d_in) by every kernel of products.py, as a run calls them (torch and oneDNN on torch's threads, numpy
    spread over the workers); the fastest of two rounds after a warm-up, alternating, each call repeated to
    20 ms. A kernel that fails here is left out."""
    from layergrad.engine import products
    from layergrad.engine.threads import numpy_single_threaded

    x, w, g = _random(rows, d_in), _random(d_out, d_in, seed=1), _random(rows, d_out, seed=2)
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


def spectra_job(x, delta) -> None:
    from layergrad.engine import solvers

    solvers.eigenvalues(short_gram(triangular_product(input_factor(x), delta).to(CORE_DTYPE)), "torch")


def describe(t: int, p: int, d: int, sharing: int) -> str:
    """One line of a cell at length t: its recipe and the variants' times there."""
    if t < SMALL:
        return f"{rule_recipe(t, p, d, sharing=sharing).describe()}  [the rule below {SMALL} positions]"
    chosen, variant, ms = choose(t, p, d, sharing)
    times = ", ".join(f"{name} {v:.2f}" for name, v in sorted(ms.items(), key=lambda kv: kv[1]))
    rule = variant_of(rule_recipe(t, p, d, sharing=sharing))
    return f"{chosen.describe()}  [ms at T={t}: {times}; rule: {rule}]"


def tune(cells: dict, *, retime: bool = False) -> list[str]:
    """Time ``cells`` ({(t, p, d, sharing): label}) on this CPU now (or read them from the cache) and
    describe the plan, a line each: the executor, the eigensolver per size, every cell's choice with
    the times it chose on."""
    if retime:
        forget()
    before = load_cache().get(machine_key(), {})

    def was(section, key):
        return " (cached)" if key in before.get(section, {}) else " (timed now)"

    from layergrad.engine.threads import workers

    lines = [f"machine: {machine_key()}"]
    if workers():
        executor(workers())
    used_plan = prepare("cpu", cells)
    for key, entry in used_plan.get("executor", {}).items():
        lines.append(f"executor with {key}: {entry['choice']}  [ms of a stack of jobs: "
                     + ", ".join(f"{k} {v:.1f}" for k, v in entry["ms"].items()) + "]" + was("executor", key))
    for key, entry in sorted(used_plan.get("solver", {}).items(), key=lambda kv: int(kv[0])):
        lines.append(f"eigensolver, n ≤ {key}: {entry['choice']}  [ms per matrix at n={entry['n']}: "
                     + ", ".join(f"{k} {v:.2f}" for k, v in entry["ms"].items()) + "]" + was("solver", key))
    for (t, p, d, sharing), label in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1:])):
        timed = all(cell_key(g, p, d, sharing) in before.get("cells", {}) for g in around(t))
        lines.append(f"T={t} {p}x{d} shared by {sharing} ({label}): {describe(t, p, d, sharing)}"
                     + (" (cached)" if timed and t >= SMALL else " (timed now)" if t >= SMALL else ""))
    return lines


def tune_model(m, lengths=(64, 128, 256, 512, 1024, 2048), modules="all", retime: bool = False) -> list[str]:
    """Time the kernel plan of this CPU for a model's shapes (``layergrad tune``), or read it from the cache.

    Args:
        m: A loaded model.
        lengths: Sample lengths (tokens) to plan for.
        modules: Which module kinds.
        retime: Forget this machine's plan and time everything again.

    Returns:
        The plan, a line each: the executor, the eigensolver per size, every (length, shape) cell's recipe with
        the times it was chosen on, and each linear layer's product kernel per size (engine/products.py).
    """
    from layergrad.engine.projections import input_sharing, select_targets

    kinds: dict = {}
    for target, sharing in input_sharing(select_targets(m.model, modules)):
        for t in sorted({int(n) for n in lengths}):
            kinds.setdefault((t, target.p, target.d, sharing), {})[target.kind] = None
    lines = tune({cell: ", ".join(names) for cell, names in kinds.items()}, retime=retime)
    return lines + tune_products(m.model, lengths)


def tune_products(model, lengths) -> list[str]:
    """One line per plain linear shape of ``model`` and row bucket of these lengths: its kernel and the times
    (the LM head's rows are at most the sample's length)."""
    from layergrad.engine.products import plain_linear
    from layergrad.engine.threads import budget

    shapes: dict = {}
    for name, mod in model.named_modules():
        if plain_linear(mod, frozen=False):
            shapes.setdefault((mod.in_features, mod.out_features), {})[name.rsplit(".", 1)[-1]] = None
    before = load_cache().get(machine_key(), {}).get("products", {})
    lines = []
    for (d_in, d_out), names in shapes.items():
        for rows in sorted({product_rows(n) for n in lengths if n >= PRODUCT_ROWS[0]}):
            span = f"{max(rows // 2 + 1, PRODUCT_ROWS[0])}-{rows}" if rows < PRODUCT_ROWS[1] else f"{rows // 2 + 1}+"
            head = f"linear {d_in}->{d_out} ({', '.join(names)}), {span} rows, {budget()} threads: "
            if rows * d_in * d_out < PRODUCT_WORK or d_in * d_out < PRODUCT_WEIGHTS:
                lines.append(head + f"torch  [below {PRODUCT_WORK:,} multiply-adds or {PRODUCT_WEIGHTS:,} weights: "
                                    "not timed]")
                continue
            choice = product_kernel(rows, d_in, d_out)
            key = product_key(rows, d_in, d_out, budget())
            entry = cached_or_timed("products", key, None, timing=False)
            times = ", ".join(f"{k} {ms:.2f}" for k, ms in sorted(entry["ms"].items(), key=lambda kv: kv[1]))
            lines.append(head + f"{choice}  [ms forward + backward at {rows} rows: {times}]"
                         + (" (cached)" if key in before else " (timed now)"))
    return lines
