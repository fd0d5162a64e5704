"""The capture hooks and their jobs: inline equals pooled bit for bit (one thread per call), errors
of a job surface, jobs run while the backward goes on, spans, and resume after SIGKILL."""

import os
import subprocess
import sys
import threading

import pandas as pd
import pytest

import layergrad
from layergrad.data.samples import Sample
from layergrad.engine import plan, solvers, spectra, threads

SAMPLES = {"short": [Sample(f"What is {i}+{i}?", str(2 * i), i) for i in range(4)],
           "long": [Sample(f"Explain step {i}.", "First we add the numbers. " * (3 + 2 * i), i) for i in range(4)]}
STATS = ["nuclear_norm", "sigma_max", "frobenius_norm", "effective_rank"]


def with_workers(monkeypatch, n: int) -> None:
    """n worker threads for the jobs (0: inline), whatever the kernel plan would time as faster."""
    monkeypatch.setattr(threads, "workers", lambda: n)
    monkeypatch.setattr(plan, "executor", lambda budget: "workers")


@pytest.mark.parametrize("cosine", [False, True])
def test_jobs_inline_and_on_workers_give_the_same_tables_bit_for_bit(tiny, monkeypatch, cosine):
    """Every job makes the same calls on one thread in the same order wherever it runs, so the
    tables are equal by construction (not by luck of a BLAS); a queue of 2 makes the backward wait."""
    m = tiny("tiny-random-qwen2")
    with_workers(monkeypatch, 0)
    inline = layergrad.compute(m, SAMPLES, batch_size=2, cosine=cosine)
    with_workers(monkeypatch, 2)
    monkeypatch.setattr(threads, "QUEUED", 2)
    pooled = layergrad.compute(m, SAMPLES, batch_size=2, cosine=cosine)
    pd.testing.assert_frame_equal(inline, pooled, check_exact=True)


@pytest.mark.parametrize("omp", ["1", "2", None])
def test_inline_equals_pooled_under_every_thread_setting(omp, tmp_path):
    """The same check in a fresh process under OMP_NUM_THREADS=1, =2 and unset (as a user runs it)."""
    code = """
import pandas as pd, layergrad
from layergrad.engine import plan, threads
from layergrad.data.samples import Sample
plan.executor = lambda budget: "workers"
m = layergrad.load_model("tiny-random-llama")
s = [Sample(f"Explain step {i}.", "First we add the numbers. " * (2 + 3 * i), i) for i in range(3)]
threads.workers = lambda: 0
a = layergrad.compute(m, s, cosine=True)
threads.workers = lambda: 3
b = layergrad.compute(m, s, cosine=True)
pd.testing.assert_frame_equal(a, b, check_exact=True)
"""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp:
        env["OMP_NUM_THREADS"] = omp
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)


def test_jobs_run_on_the_workers_while_the_backward_runs(tiny, monkeypatch):
    """With workers every eigensolve runs on a worker thread; none is left for after the backward."""
    with_workers(monkeypatch, 2)
    seen, real = [], solvers.eigenvalues

    def spy(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(solvers, "eigenvalues", spy)
    layergrad.compute(tiny("tiny-random-llama"), SAMPLES["short"])
    assert seen and all(name.startswith("layergrad-job") for name in seen)


@pytest.mark.parametrize("n_workers", [0, 2])
def test_an_error_in_a_job_is_raised_and_the_next_run_works(tiny, monkeypatch, n_workers):
    m = tiny("tiny-random-llama")
    with_workers(monkeypatch, n_workers)
    want = layergrad.compute(m, SAMPLES["short"])
    real = spectra.core_matrix

    def broken(*args, **kwargs):
        raise ValueError("injected job failure")

    monkeypatch.setattr(spectra, "core_matrix", broken)
    with pytest.raises(ValueError, match="injected job failure"):
        layergrad.compute(m, SAMPLES["short"], route="core")
    monkeypatch.setattr(spectra, "core_matrix", real)
    # the same computation as ``want`` in the same process (same kernels, same plan): equal by construction
    pd.testing.assert_frame_equal(layergrad.compute(m, SAMPLES["short"]), want, check_exact=True)


def test_batch_spans_on_a_cpu_equal_per_sample_spans(tiny):
    m = tiny("tiny-random-llama")
    per_sample = layergrad.compute(m, SAMPLES, batch_size=4, solve_per="sample")
    per_batch = layergrad.compute(m, SAMPLES, batch_size=4, solve_per="batch")
    assert (per_batch.route != "reference").all()
    pd.testing.assert_frame_equal(per_sample[STATS], per_batch[STATS], rtol=1e-6)


def test_an_unknown_option_is_one_line_with_a_suggestion(tiny):
    with pytest.raises(layergrad.LayergradError, match="unknown option 'cosin'. Did you mean 'cosine'"):
        layergrad.compute(tiny(), SAMPLES["short"], cosin=True)
