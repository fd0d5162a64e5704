"""Eigensolver backends and the per-machine choice between them."""


import numpy as np
import pandas as pd
import pytest
import torch

import layergrad
from layergrad.cli import main
from layergrad.data.samples import Sample
from layergrad.engine import solvers, spectra

SAMPLES = [Sample(f"Explain step {i}.", "First we add the numbers. " * (3 + 2 * i), i) for i in range(4)]
STATS = ["nuclear_norm", "sigma_max", "frobenius_norm", "effective_rank"]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("n", [8, 40, 200])
def test_every_cpu_backend_gives_the_eigenvalues(n):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(5, n, n + 3))
    stack = torch.from_numpy(a @ a.transpose(0, 2, 1))
    want = np.sort(np.linalg.eigvalsh(stack.numpy()), axis=-1)[..., ::-1]
    for name in ("torch", "numpy", "host", "auto"):
        # fp64 eigenvalues to a few ulps of the largest (backward stable solvers): absolute at that scale
        np.testing.assert_allclose(solvers.eigenvalues(stack, name).numpy(), want, rtol=0, atol=1e-11 * want.max())


def test_torch_and_numpy_solvers_agree_to_1e7(tiny):
    """Two LAPACKs: σ near the rounding floor of σ² (rank-deficient Grams) differ by up to sqrt(n·eps)
    of σ1, so statistics agree to 1e-9-1e-8 relative (measured), not to the last bit; far below 1e-4."""
    m = tiny("tiny-random-qwen2")
    a = layergrad.compute(m, SAMPLES, solver="numpy")
    b = layergrad.compute(m, SAMPLES, solver="torch")
    pd.testing.assert_frame_equal(a[STATS], b[STATS], rtol=1e-7, atol=0)


def test_spectra_uses_the_solver_backend():
    x = torch.randn(1, 30, 48)
    delta = torch.randn(1, 30, 40)
    m = spectra.core_matrix(spectra.input_factor(x), delta)
    a, b = spectra.squared_singular_values(m, "numpy"), spectra.squared_singular_values(m, "torch")
    # two LAPACKs on the same fp64 matrix: each eigenvalue to a few ulps of the largest (backward stability)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * float(b.max()))


def test_cupy_for_a_model_on_the_cpu_is_refused_before_any_forward_pass(tiny):
    m = tiny("tiny-random-llama")
    calls = []
    handle = m.model.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(layergrad.LayergradError, match="solver 'cupy' needs CuPy and a CUDA device"):
            layergrad.compute(m, SAMPLES, solver="cupy")
    finally:
        handle.remove()
    assert calls == []


def test_bad_solver_and_threads_are_one_line(tmp_path, capsys):
    base = ["compute", "--model", "tiny-random-llama", "-q", "--data", "a=builtin:arith/none?n=2", "--out",
            str(tmp_path / "r")]
    assert main(base + ["--threads", "0"]) == 2 and "threads must be a positive integer" in capsys.readouterr().err
    if not solvers.cupy_available():
        assert main(base + ["--solver", "cupy"]) == 2
        assert "solver 'cupy' needs CuPy" in capsys.readouterr().err


@CUDA
def test_gpu_backends_agree():
    a = torch.randn(40, 64, 70, dtype=torch.float64, device="cuda")
    stack = a @ a.transpose(-1, -2)
    want = solvers.eigenvalues(stack.cpu(), "torch")
    names = ["torch", "host"] + (["cupy"] if solvers.cupy_available() else [])
    for name in names:
        got = solvers.eigenvalues(stack, name)
        assert got.is_cuda
        torch.testing.assert_close(got.cpu(), want, rtol=1e-10, atol=1e-8)
    assert solvers.choose(stack, "auto") in names


@CUDA
def test_gpu_jobs_inline_equal_pooled(monkeypatch):
    from layergrad.engine import threads

    m = layergrad.load_model("tiny-random-llama", device="cuda")
    monkeypatch.setattr(threads, "workers", lambda: 0)
    a = layergrad.compute(m, SAMPLES, batch_tokens=512)
    monkeypatch.setattr(threads, "workers", lambda: 2)
    b = layergrad.compute(m, SAMPLES, batch_tokens=512)
    # equal by construction: every job issues the same kernels in the same order on whichever thread runs it
    pd.testing.assert_frame_equal(a, b, check_exact=True)
