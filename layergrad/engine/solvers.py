"""Symmetric eigensolvers for the σ² problems: the backends.

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

``auto`` means the fastest backend on this machine for the stack's size, which the kernel plan times
once and caches (plan/eigensolvers.py: ``plan.eigensolver`` resolves it; unresolved it is the rule: torch, host
for GPU stacks from 32 on). The LAPACKs agree to ~1e-15 relative; one machine's cache keeps its choice,
so its runs repeat bit for bit.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import torch

from layergrad.engine.options import SOLVERS
from layergrad.errors import InputError

_local = threading.local()  # each worker's pinned host buffer


def eigenvalues(matrices: torch.Tensor, solver: str = "torch", cpu_solver: str = "torch") -> torch.Tensor:
    """(..., n, n) symmetric PSD fp64 matrices -> (..., n) eigenvalues, descending, >= 0, by ``solver``;
    ``cpu_solver`` ('torch' or 'numpy') is the LAPACK that 'host' (and 'auto' on a CPU) runs. Which
    backend is fastest is the kernel plan's business (plan.eigensolver resolves 'auto'); unresolved, 'auto'
    takes the rule."""
    if matrices.numel() == 0:
        return matrices.new_zeros(matrices.shape[:-1])
    if solver == "auto":
        solver = rule(True, matrices.shape[-1]) if matrices.is_cuda else cpu_solver
    if solver == "host" and not matrices.is_cuda:
        solver = cpu_solver
    if solver == "torch":
        ev = torch.linalg.eigvalsh(matrices, UPLO="U")
    elif solver == "cupy":
        ev = cupy_eigvalsh(matrices)
    else:
        ev = host_eigvalsh(matrices, cpu_solver if solver == "host" else solver).to(matrices.device)
    return below_precision_to_zero(ev.flip(-1).clamp_min(0))


def rule(cuda: bool, n: int) -> str:
    """The eigensolver without timing: torch's LAPACK on a CPU; on a GPU torch below n = 32, else the host's."""
    return ("host" if n >= 32 else "torch") if cuda else "torch"


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


# ----------------------------------------------------------------------------- backends

def host_eigvalsh(matrices: torch.Tensor, cpu_solver: str = "torch") -> torch.Tensor:
    """LAPACK on this CPU thread (``cpu_solver`` numpy or torch); GPU stacks are copied to this thread's
    pinned host buffer first."""
    if matrices.is_cuda:
        pinned = pinned_buffer(matrices.numel(), matrices.dtype)[:matrices.numel()].view(matrices.shape)
        pinned.copy_(matrices, non_blocking=True)
        torch.cuda.current_stream(matrices.device).synchronize()
        matrices = pinned
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


# ----------------------------------------------------------------------------- choice

def candidates(device: torch.device) -> list[str]:
    """The backends that can solve a stack on ``device``."""
    if device.type == "cpu":
        return ["torch", "numpy"]
    return ["torch", "host"] + (["cupy"] if cupy_available() else [])
