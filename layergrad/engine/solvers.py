"""Symmetric eigensolvers for the σ² problems: backends, and which one to use on this machine.

Every backend takes a stack of fp64 symmetric matrices (upper triangles read) and returns their
eigenvalues, descending, clamped at 0, on the matrices' device; it runs on the calling thread (a
job of threads.Jobs, its BLAS/LAPACK on one thread):

- ``torch``: ``torch.linalg.eigvalsh`` where the matrices are (on a CPU: the LAPACK torch carries,
  MKL on x86; on CUDA: cuSOLVER, one matrix at a time above 32x32, pytorch#175585);
- ``numpy``: ``numpy.linalg.eigvalsh`` on the host (the LAPACK of numpy's wheels, OpenBLAS; it
  releases the GIL);
- ``cupy``: ``cupy.linalg.eigvalsh`` on the GPU, the stack handed over by DLPack without a copy
  (optional: ``pip install 'layergrad[cuda12]'`` or ``[cuda13]``);
- ``host``: GPU stacks copied to pinned host memory and solved by the CPU's choice, so LAPACK
  runs on the cores while the GPU goes on with the backward; on a CPU the same as ``auto``.

``auto`` times the candidates once per machine and size bucket on random matrices of that size
and caches the winner in the user cache (``solver-calibration.json``, under a file lock): on a CPU
torch against numpy (which LAPACK wins depends on the CPU: on an AMD EPYC numpy's OpenBLAS solves
n = 576 in 25 ms where MKL takes 38; an Intel CPU may rank them the other way); on a GPU torch,
host and cupy. ``LAYERGRAD_SOLVER_RULES=1`` skips timing and uses ``RULES``. The LAPACKs agree to
~1e-15 relative; one machine's cache keeps its choice, so its runs repeat bit for bit.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import threading
import time

import numpy as np
import torch

from layergrad.engine.options import SOLVERS
from layergrad.errors import InputError

SMALL = 32  # below this size the backends do not differ: torch, never timed
MARGIN = 0.95  # numpy replaces torch on a CPU only when at least 5% faster (noise must not flip it)
RULES = {"cpu": "torch", "cuda": [(SMALL, "torch"), (None, "host")]}  # when calibration is off
_memo: dict[tuple[str, int], str] = {}
_memo_lock = threading.Lock()
_local = threading.local()  # each worker's pinned host buffer


def eigenvalues(matrices: torch.Tensor, solver: str = "auto") -> torch.Tensor:
    """(..., n, n) symmetric PSD fp64 matrices -> (..., n) eigenvalues, descending, >= 0."""
    if matrices.numel() == 0:
        return matrices.new_zeros(matrices.shape[:-1])
    name = choose(matrices, solver)
    if name == "torch":
        ev = torch.linalg.eigvalsh(matrices, UPLO="U")
    elif name == "cupy":
        ev = cupy_eigvalsh(matrices)
    else:
        ev = host_eigvalsh(matrices, name).to(matrices.device)
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
    if solver == "cupy" and not (torch.device(device).type == "cuda" and cupy_available()):
        raise InputError("solver 'cupy' needs CuPy and a CUDA device: pip install 'layergrad[cuda12]' (or cuda13)")


def choose(matrices: torch.Tensor, solver: str) -> str:
    """The backend for this stack: the one asked, or the calibrated choice for its device and size."""
    n = matrices.shape[-1]
    if matrices.is_cuda:
        return solver if solver != "auto" else calibrated(matrices.device, n)
    if solver in ("torch", "numpy"):
        return solver
    return "torch" if n < SMALL else calibrated(torch.device("cpu"), n)  # auto, host (cupy: refused by check)


# ----------------------------------------------------------------------------- backends

def host_eigvalsh(matrices: torch.Tensor, cpu_solver: str = "host") -> torch.Tensor:
    """LAPACK on this CPU thread (``cpu_solver`` numpy, torch, or host = the calibrated one); GPU
    stacks are copied to this thread's pinned host buffer first."""
    if matrices.is_cuda:
        pinned = pinned_buffer(matrices.numel(), matrices.dtype)[:matrices.numel()].view(matrices.shape)
        pinned.copy_(matrices, non_blocking=True)
        torch.cuda.current_stream(matrices.device).synchronize()
        matrices = pinned
    if cpu_solver == "host":
        cpu_solver = choose(matrices, "auto")
    if cpu_solver == "numpy":
        return torch.from_numpy(np.linalg.eigvalsh(matrices.numpy(), UPLO="U"))
    return torch.linalg.eigvalsh(matrices, UPLO="U")


def pinned_buffer(numel: int, dtype) -> torch.Tensor:
    """This thread's page-locked host buffer of at least ``numel`` elements, reused between calls
    (allocating pinned memory costs about a millisecond per megabyte)."""
    buffer = getattr(_local, "pinned", None)
    if buffer is None or buffer.dtype != dtype or buffer.numel() < numel:
        buffer = _local.pinned = torch.empty(numel, dtype=dtype, pin_memory=True)
    return buffer


def cupy_eigvalsh(matrices: torch.Tensor) -> torch.Tensor:
    """CuPy's eigvalsh on the matrices' own stream, zero-copy both ways (DLPack)."""
    import cupy

    stream = torch.cuda.current_stream(matrices.device)
    with cupy.cuda.Device(matrices.device.index or 0), cupy.cuda.ExternalStream(stream.cuda_stream):
        ev = cupy.linalg.eigvalsh(cupy.from_dlpack(matrices.contiguous()), UPLO="U")
        return torch.from_dlpack(ev)


@functools.cache
def cupy_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # not installed, or built for another CUDA: not available
        return False


# ----------------------------------------------------------------------------- calibration

def bucket(n: int) -> int:
    """Sizes are calibrated in powers of two (32, 64, ..., 4096)."""
    return max(SMALL, 1 << (max(n, 1) - 1).bit_length())


def candidates(device: torch.device) -> list[str]:
    if device.type == "cpu":
        return ["torch", "numpy"]
    return ["torch", "host"] + (["cupy"] if cupy_available() else [])


def calibrated(device: torch.device, n: int) -> str:
    """The fastest backend for size-``n`` stacks on ``device`` (timed once per machine, cached)."""
    if os.environ.get("LAYERGRAD_SOLVER_RULES"):
        if device.type == "cpu":
            return RULES["cpu"]
        return next(name for limit, name in RULES["cuda"] if limit is None or n < limit)
    key = (device_key(device), bucket(n))
    with _memo_lock:
        if key not in _memo:
            _memo[key] = cached_or_timed(device, *key)
        return _memo[key]


def cached_or_timed(device: torch.device, key: str, size: int) -> str:
    """The cached winner, else time the candidates now (one process at a time) and cache it."""
    from filelock import FileLock

    path = calibration_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
    except OSError:  # a read-only cache: time it for this process only
        return fastest(device, size)
    with lock:
        table = load_calibration()
        if str(size) not in table.get(key, {}):
            table.setdefault(key, {})[str(size)] = fastest(device, size)
            save_calibration(table)
        return table[key][str(size)]


def device_key(device: torch.device) -> str:
    if device.type == "cpu":
        return f"cpu|{cpu_name()}|torch {torch.__version__}|numpy {np.__version__}"
    cupy_version = ""
    if cupy_available():
        import cupy

        cupy_version = cupy.__version__
    return f"{torch.cuda.get_device_name(device)}|torch {torch.__version__}|cupy {cupy_version}"


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fastest(device: torch.device, size: int) -> str:
    """Time every candidate on the same random SPD matrices (n = 3/4 of the bucket's top), best of 3,
    alternating; on a CPU each on one thread, as the jobs run them."""
    from layergrad.engine.threads import numpy_single_threaded, one_thread

    n = max(SMALL, size * 3 // 4)
    count = 4 if n >= 384 else 16
    a = torch.randn(count, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(device)
    stack = a @ a.transpose(-1, -2)
    names = candidates(device)
    best = dict.fromkeys(names, float("inf"))
    with one_thread(), numpy_single_threaded():
        for name in names:  # warm-up: kernels, handles, first-touch
            eigenvalues(stack[:1], name)
        for _ in range(3):
            for name in names:
                synchronize(device)
                start = time.perf_counter()
                eigenvalues(stack, name)
                synchronize(device)
                best[name] = min(best[name], time.perf_counter() - start)
    if device.type == "cpu":
        return "numpy" if best["numpy"] < MARGIN * best["torch"] else "torch"
    return min(best, key=best.get)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, indent=1))
        tmp.replace(path)
    except OSError:  # a read-only cache only costs a re-calibration next time
        pass


def calibrate(device, sizes) -> None:
    """Time the buckets of ``sizes`` now (before a run's first forward pass, while nothing else runs)."""
    device = torch.device(device)
    for size in sorted({bucket(n) for n in sizes if n >= SMALL}):
        calibrated(device, size)
