"""The thread budget and the executor."""

import threading

import pytest
import torch

from layergrad.engine import threads


def test_cpu_budget_honours_omp_and_cgroup_quota(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.cpu_budget() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_quota(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_quota(tmp_path) is None
    before = torch.get_num_threads()
    with threads.one_thread():  # MKL's thread-local setting: torch's budget stays
        assert torch.get_num_threads() == before
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("size", [0, 2])
def test_jobs_run_all_in_order_and_bound_what_is_owed(size):
    done, most, owed = [], [0], [0]
    lock = threading.Lock()
    jobs = threads.Jobs(size, queued=3)

    def job(i):
        with lock:
            owed[0] -= 1
        done.append(i)

    for i in range(30):
        with lock:
            owed[0] += 1
            most[0] = max(most[0], owed[0])
        jobs.submit(lambda i=i: job(i))
    jobs.collect()
    assert sorted(done) == list(range(30)) and most[0] <= 3 + 1 + size


def test_a_failed_job_is_raised_at_collect_and_cancel_drops_the_rest():
    jobs = threads.Jobs(2, queued=100)
    jobs.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        jobs.collect()
    gate = threading.Event()
    jobs.submit(gate.wait)
    jobs.submit(gate.wait)
    started = []
    jobs.submit(lambda: started.append(1))
    gate.set()
    jobs.cancel()
    jobs.collect()  # nothing owed any more
