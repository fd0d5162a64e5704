"""Symmetric eigensolvers for the σ² problems: backends, and which one to use per device and size.

Every backend takes a stack of fp64 symmetric matrices (upper triangles read) and returns their
eigenvalues, descending, clamped at 0, on the matrices' device:

- ``torch``: ``torch.linalg.eigvalsh`` where the matrices are. On CUDA, PyTorch solves batched
  inputs larger than 32x32 one matrix at a time (pytorch#175585, #174674), which is slow;
- ``cupy``: ``cupy.linalg.eigvalsh`` on the GPU, the stack handed over by DLPack without a copy
  (optional: ``pip install 'layergrad[cuda12]'`` or ``[cuda13]``);
- ``host``: LAPACK's divide and conquer (torch's, which releases the GIL) on a pool of CPU
  threads, one matrix per thread on one MKL thread each; GPU stacks are copied to pinned host
  memory first. On a CPU this is the fast path: the tridiagonal reduction is memory-bound, so
  one eigenproblem per core beats several cores per eigenproblem, and a threaded MKL solve
  collapses when another process shares the cores. The ``torch`` backend on a CPU runs the
  same LAPACK routine on one thread, so the two give identical numbers.

``auto`` takes ``host`` for CPU stacks; for GPU stacks it times the available backends once per
(device, size bucket) on random matrices of that size and caches the winner in the user cache
(``solver-calibration.json``; ``LAYERGRAD_SOLVER_RULES=1`` skips timing and uses the measured
rules in ``RULES``).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time

import torch

from layergrad.engine.threads import budget, one_thread
from layergrad.errors import InputError

SOLVERS = ("auto", "torch", "cupy", "host")
SMALL = 32  # below this size one LAPACK call costs less than a thread hand-off: torch on the CPU
RULES = {"cuda": [(SMALL, "torch"), (None, "host")]}  # measured fallback when calibration is off
_lock = threading.Lock()  # the calibration table
_pinned_lock = threading.Lock()


def eigenvalues(matrices: torch.Tensor, solver: str = "auto", threads: int | None = None) -> torch.Tensor:
    """(..., n, n) symmetric PSD fp64 matrices -> (..., n) eigenvalues, descending, >= 0."""
    if matrices.numel() == 0:
        return matrices.new_zeros(matrices.shape[:-1])
    name = choose(matrices, solver)
    if name == "torch":
        with one_thread(not matrices.is_cuda):
            ev = torch.linalg.eigvalsh(matrices, UPLO="U")
    elif name == "cupy":
        ev = cupy_eigvalsh(matrices)
    else:
        ev = host_eigvalsh(matrices, threads).to(matrices.device)
    return below_precision_to_zero(ev.flip(-1).clamp_min(0))


def below_precision_to_zero(ev: torch.Tensor) -> torch.Tensor:
    """Eigenvalues under n · eps · λ_max are rounding noise of the solver (the Gram of a rank-deficient
    gradient has exact zeros there): set them to 0, so that every backend gives the same σ (their
    square roots would otherwise add ~1e-9 relative noise to a nuclear norm)."""
    floor = ev[..., :1] * (ev.shape[-1] * torch.finfo(ev.dtype).eps)
    return torch.where(ev > floor, ev, torch.zeros_like(ev))


def check(solver: str, device) -> None:
    """A one-line InputError for a solver that does not exist or cannot run on ``device``."""
    if solver not in SOLVERS:
        raise InputError(f"unknown solver {solver!r}; use one of {', '.join(SOLVERS)}")
    if solver == "cupy" and not (torch.device(device).type == "cuda" and cupy_available(device)):
        raise InputError("solver 'cupy' needs CuPy and a CUDA device: pip install 'layergrad[cuda12]' (or cuda13)")


def choose(matrices: torch.Tensor, solver: str) -> str:
    """The backend for this stack: the one asked, or auto's choice for its device and size."""
    check(solver, matrices.device)
    if solver != "auto":
        return solver
    if not matrices.is_cuda:
        return "host"
    return calibrated(matrices.device, matrices.shape[-1])


# ----------------------------------------------------------------------------- backends

def host_eigvalsh(matrices: torch.Tensor, threads: int | None = None) -> torch.Tensor:
    """LAPACK on CPU threads, one matrix per thread on one MKL thread each (identical numbers to the
    ``torch`` backend on a CPU); GPU stacks are copied to pinned host memory first."""
    if matrices.is_cuda:
        pinned = pinned_buffer(matrices.numel(), matrices.dtype)[:matrices.numel()].view(matrices.shape)
        pinned.copy_(matrices, non_blocking=True)
        torch.cuda.current_stream(matrices.device).synchronize()
        matrices = pinned
    flat = matrices.reshape(-1, *matrices.shape[-2:])
    workers = max(1, min(threads or budget(), len(flat)))
    if workers == 1 or matrices.shape[-1] < SMALL:
        ev = single_threaded_eigvalsh(flat)
    else:
        ev = torch.cat(list(eig_pool(workers).map(single_threaded_eigvalsh, torch.tensor_split(flat, workers))))
    return ev.reshape(matrices.shape[:-1])


_pinned: dict = {}


def pinned_buffer(numel: int, dtype) -> torch.Tensor:
    """A page-locked host buffer of at least ``numel`` elements, reused between calls (allocating
    pinned memory costs about a millisecond per megabyte). One finishing thread uses it at a time."""
    with _pinned_lock:
        buffer = _pinned.get(dtype)
        if buffer is None or buffer.numel() < numel:
            buffer = _pinned[dtype] = torch.empty(numel, dtype=dtype, pin_memory=True)
        return buffer


def single_threaded_eigvalsh(stack: torch.Tensor) -> torch.Tensor:
    with one_thread():
        return torch.linalg.eigvalsh(stack, UPLO="U")


def cupy_eigvalsh(matrices: torch.Tensor) -> torch.Tensor:
    """CuPy's eigvalsh on the matrices' own stream, zero-copy both ways (DLPack)."""
    import cupy

    stream = torch.cuda.current_stream(matrices.device)
    with cupy.cuda.Device(matrices.device.index or 0), cupy.cuda.ExternalStream(stream.cuda_stream):
        ev = cupy.linalg.eigvalsh(cupy.from_dlpack(matrices.contiguous()), UPLO="U")
        return torch.from_dlpack(ev)


@functools.cache
def cupy_available(device=None) -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # not installed, or built for another CUDA: not available
        return False


@functools.cache
def eig_pool(workers: int):
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(workers, thread_name_prefix="layergrad-eig")


# ----------------------------------------------------------------------------- auto on a GPU

def bucket(n: int) -> int:
    """Sizes are calibrated in powers of two (32, 64, ..., 4096)."""
    return max(SMALL, 1 << (max(n, 1) - 1).bit_length())


def available(device) -> list[str]:
    return ["torch", "host"] + (["cupy"] if cupy_available(device) else [])


def calibrated(device, n: int) -> str:
    """The fastest backend for size-``n`` stacks on ``device`` (timed once, cached on disk)."""
    if os.environ.get("LAYERGRAD_SOLVER_RULES"):
        return next(name for limit, name in RULES["cuda"] if limit is None or n < limit)
    key, size = device_key(device), str(bucket(n))
    with _lock:
        table = load_calibration()
        if size not in table.get(key, {}):
            table.setdefault(key, {})[size] = fastest(device, bucket(n))
            save_calibration(table)
        return table[key][size]


def device_key(device) -> str:
    cupy_version = ""
    if cupy_available(device):
        import cupy

        cupy_version = cupy.__version__
    return f"{torch.cuda.get_device_name(device)}|torch {torch.__version__}|cupy {cupy_version}"


def fastest(device, n: int) -> str:
    """Time every available backend on a stack of random SPD matrices of size n."""
    count = 64 if n <= 256 else 16
    a = torch.randn(count, n, n, dtype=torch.float64, device=device)
    stack = a @ a.transpose(-1, -2)
    times = {}
    for name in available(device):
        eigenvalues(stack[:2], name)  # warm-up: kernels, handles, the pool
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        eigenvalues(stack, name)
        torch.cuda.synchronize(device)
        times[name] = time.perf_counter() - start
    return min(times, key=times.get)


def calibration_path():
    from layergrad.models import cache_dir

    return cache_dir() / "solver-calibration.json"


def load_calibration() -> dict:
    try:
        return json.loads(calibration_path().read_text())
    except (OSError, ValueError):
        return {}


def save_calibration(table: dict) -> None:
    path = calibration_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, indent=1))
        tmp.replace(path)
    except OSError:  # a read-only cache only costs a re-calibration next time
        pass
