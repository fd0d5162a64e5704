"""Solver backends, overlapped finishing, segmentation and the thread budget."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch

import layergrad
from layergrad.cli import main
from layergrad.data.samples import Sample
from layergrad.engine import solvers, spectra, threads
from layergrad.engine.pipeline import run_pipeline

SAMPLES = {"short": [Sample(f"What is {i}+{i}?", str(2 * i), i) for i in range(4)],
           "long": [Sample(f"Explain step {i}.", "First we add the numbers. " * (3 + 2 * i), i) for i in range(4)]}
STATS = ["nuclear_norm", "sigma_max", "frobenius_norm", "effective_rank"]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_overlapped_and_synchronous_runs_are_bit_identical(tiny):
    m = tiny("tiny-random-llama")
    sync = layergrad.compute(m, SAMPLES, overlap=False)
    overlapped = layergrad.compute(m, SAMPLES, overlap=True, batch_size=2)
    ordered = layergrad.compute(m, SAMPLES, overlap=False, batch_size=2)
    pd.testing.assert_frame_equal(overlapped, ordered, check_exact=True)
    pd.testing.assert_frame_equal(overlapped.attrs["samples"], ordered.attrs["samples"], check_exact=True)
    pd.testing.assert_frame_equal(sync[STATS], ordered[STATS], rtol=1e-6)  # batch of one vs two: float noise


@pytest.mark.parametrize("cosine", [False, True])
def test_capture_helpers_give_the_same_tables_bit_for_bit(tiny, monkeypatch, cosine):
    """The per-target work on helper threads (the default on a multi-core CPU), with a queue short
    enough that the backward waits for them, equals doing it in the hooks."""
    from layergrad.engine import capture

    m = tiny("tiny-random-qwen2")
    monkeypatch.setattr(capture, "uses_helpers", lambda model: False)
    inline = layergrad.compute(m, SAMPLES, batch_size=2, cosine=cosine)
    monkeypatch.setattr(capture, "uses_helpers", lambda model: True)
    monkeypatch.setattr(capture, "QUEUED", 2)
    helped = layergrad.compute(m, SAMPLES, batch_size=2, cosine=cosine)
    pd.testing.assert_frame_equal(inline, helped, check_exact=True)


def test_capture_helpers_solve_while_the_backward_runs(tiny, monkeypatch):
    """With helpers every eigensolve runs on a helper thread: none is left for the finishing step."""
    from layergrad.engine import capture

    monkeypatch.setattr(capture, "uses_helpers", lambda model: True)
    seen, real = [], solvers.eigenvalues

    def spy(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(solvers, "eigenvalues", spy)
    layergrad.compute(tiny("tiny-random-llama"), SAMPLES["short"])
    assert seen and all(name.startswith("layergrad-capture") for name in seen)


def test_cupy_for_a_model_on_the_cpu_is_refused_before_any_forward_pass(tiny, monkeypatch):
    from layergrad.engine import capture

    monkeypatch.setattr(capture, "uses_helpers", lambda model: True)
    m = tiny("tiny-random-llama")
    calls = []
    handle = m.model.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(layergrad.LayergradError, match="solver 'cupy' needs CuPy and a CUDA device"):
            layergrad.compute(m, SAMPLES["short"], solver="cupy")
    finally:
        handle.remove()
    assert calls == []


def test_an_error_on_a_capture_helper_is_raised_and_the_next_run_works(tiny, monkeypatch):
    from layergrad.engine import capture

    m = tiny("tiny-random-llama")
    monkeypatch.setattr(capture, "uses_helpers", lambda model: True)
    want = layergrad.compute(m, SAMPLES["short"])
    real = spectra.core_matrix

    def broken(*args, **kwargs):
        raise ValueError("injected helper failure")

    monkeypatch.setattr(spectra, "core_matrix", broken)
    with pytest.raises(ValueError, match="injected helper failure"):
        layergrad.compute(m, SAMPLES["short"], route="core")
    monkeypatch.setattr(spectra, "core_matrix", real)
    pd.testing.assert_frame_equal(layergrad.compute(m, SAMPLES["short"]), want, check_exact=True)


def test_host_and_torch_solvers_agree_to_1e12(tiny):
    m = tiny("tiny-random-qwen2")
    host = layergrad.compute(m, SAMPLES, solver="host")
    torch_ = layergrad.compute(m, SAMPLES, solver="torch")
    pd.testing.assert_frame_equal(host[STATS], torch_[STATS], rtol=1e-12, atol=0)


@pytest.mark.parametrize("n", [8, 40, 200])
def test_every_backend_gives_the_eigenvalues(n):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(5, n, n + 3))
    stack = torch.from_numpy(a @ a.transpose(0, 2, 1))
    want = np.sort(np.linalg.eigvalsh(stack.numpy()), axis=-1)[..., ::-1]
    for name in ("torch", "host"):
        np.testing.assert_allclose(solvers.eigenvalues(stack, name).numpy(), want, rtol=1e-10, atol=1e-9)
    assert solvers.choose(stack, "auto") == "host"


def test_batch_segmentation_on_a_cpu_equals_per_sample(tiny):
    m = tiny("tiny-random-llama")
    per_sample = layergrad.compute(m, SAMPLES, batch_size=4, segments="sample")
    per_batch = layergrad.compute(m, SAMPLES, batch_size=4, segments="batch")
    assert (per_batch.route != "reference").all()
    pd.testing.assert_frame_equal(per_sample[STATS], per_batch[STATS], rtol=1e-6)


def test_a_failing_worker_is_one_line_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    from layergrad.engine import compute

    args = ["compute", "--model", "tiny-random-llama", "-q", "--overlap", "--data", "a=builtin:arith/none?n=6",
            "--data", "b=builtin:arith/simplified?n=6", "--out"]
    calls = {"n": 0}
    real = compute.Pending.finish

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("solver exploded\nsecond line")
        return real(self)

    monkeypatch.setattr(compute.Pending, "finish", flaky)
    assert main(args + [str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: RuntimeError: solver exploded (set LAYERGRAD_DEBUG=1 for the traceback)"
    assert len(list((tmp_path / "r" / "chunks").glob("*.samples.parquet"))) >= 3  # committed before the failure
    monkeypatch.setattr(compute.Pending, "finish", real)
    assert main(args + [str(tmp_path / "r")]) == 0 and main(args + [str(tmp_path / "clean")]) == 0
    for name in ("stats", "samples"):
        a = pd.read_parquet(tmp_path / "r" / f"{name}.parquet")
        b = pd.read_parquet(tmp_path / "clean" / f"{name}.parquet")
        pd.testing.assert_frame_equal(a, b)


def test_sigkill_during_an_overlapped_run_then_resume(tmp_path):
    cmd = [sys.executable, "-m", "layergrad", "compute", "--model", "tiny-random-llama", "--quiet", "--overlap",
           "--data", "a=builtin:arith/detailed?n=40", "--data", "b=builtin:arith/none?n=40"]
    subprocess.run(cmd + ["--out", str(tmp_path / "clean")], check=True, timeout=600)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(killed)])
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(list((killed / "chunks").glob("*.samples.parquet"))) >= 25:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    subprocess.run(cmd + ["--out", str(killed)], check=True, timeout=600)
    for name, keys in (("stats", ["condition", "sample_id", "param"]), ("samples", ["condition", "sample_id"])):
        a = pd.read_parquet(tmp_path / "clean" / f"{name}.parquet").sort_values(keys).reset_index(drop=True)
        b = pd.read_parquet(killed / f"{name}.parquet").sort_values(keys).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)


def test_pipeline_keeps_order_and_bounds_what_is_in_flight():
    in_flight, seen, most = set(), [], [0]

    def produce():
        for i in range(20):
            in_flight.add(i)
            most[0] = max(most[0], len(in_flight))
            yield i

    def finish(i):
        time.sleep(0.002 * (i % 3))
        return i * 10

    def handle(v):
        seen.append(v)
        in_flight.discard(v // 10)

    run_pipeline(produce(), finish, handle, overlap=True, depth=1)
    assert seen == [10 * i for i in range(20)] and most[0] <= 3  # computing + waiting + finishing


def test_cpu_budget_honours_omp_and_cgroup_quota(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.cpu_budget() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_quota(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_quota(tmp_path) is None
    before = torch.get_num_threads()
    with threads.one_thread():  # MKL's thread-local setting where torch has it: the budget stays
        assert torch.get_num_threads() == (before if threads.mkl_local_setter() else 1)
    assert torch.get_num_threads() == before


def test_bad_solver_and_threads_are_one_line(tmp_path, capsys):
    base = ["compute", "--model", "tiny-random-llama", "-q", "--data", "a=builtin:arith/none?n=2", "--out",
            str(tmp_path / "r")]
    assert main(base + ["--threads", "0"]) == 2 and "threads must be a positive integer" in capsys.readouterr().err
    if not solvers.cupy_available():
        assert main(base + ["--solver", "cupy"]) == 2
        assert "solver 'cupy' needs CuPy" in capsys.readouterr().err


@CUDA
def test_gpu_backends_agree(tiny):
    a = torch.randn(40, 64, 70, dtype=torch.float64, device="cuda")
    stack = a @ a.transpose(-1, -2)
    want = solvers.eigenvalues(stack.cpu(), "host")
    names = ["torch", "host"] + (["cupy"] if solvers.cupy_available() else [])
    for name in names:
        got = solvers.eigenvalues(stack, name)
        assert got.is_cuda
        torch.testing.assert_close(got.cpu(), want, rtol=1e-10, atol=1e-8)
    assert solvers.choose(stack, "auto") in names


@CUDA
def test_gpu_overlap_equals_synchronous(tiny):
    m = layergrad.load_model("tiny-random-llama", device="cuda")
    a = layergrad.compute(m, SAMPLES, overlap=True, batch_tokens=512)
    b = layergrad.compute(m, SAMPLES, overlap=False, batch_tokens=512)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_spectra_uses_the_solver_backend():
    x = torch.randn(1, 30, 48)
    delta = torch.randn(1, 30, 40)
    m = spectra.core_matrix(spectra.input_factor(x), delta)
    np.testing.assert_allclose(spectra.squared_singular_values(m, "host"), spectra.squared_singular_values(m, "torch"),
                               rtol=1e-12)
