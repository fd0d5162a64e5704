"""torchrun: two gloo ranks on a CPU give the single-process tables; a killed rank resumes."""

import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from layergrad.runs.sharding import assign

DATA = ["--data", "a=builtin:arith/detailed?n=12", "--data", "b=builtin:arith/none?n=12"]
KEYS = {"stats": ["condition", "sample_id", "param"], "samples": ["condition", "sample_id"]}


def compute(out, nproc=None, **popen):
    args = ["-m", "layergrad", "compute", "--model", "tiny-random-llama", "-q", "--batch-size", "1",
            "--out", str(out), *DATA]
    if nproc:
        args = ["-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port", str(free_port())] + args
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, *args], env=env, **popen)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tables(out):
    return {name: pd.read_parquet(out / f"{name}.parquet").sort_values(keys).reset_index(drop=True)
            for name, keys in KEYS.items()}


def assert_same(a, b):
    for name, keys in KEYS.items():
        assert not b[name].duplicated(keys).any()
        assert list(a[name][keys].itertuples(index=False)) == list(b[name][keys].itertuples(index=False))
        numeric = a[name].select_dtypes("number").columns
        pd.testing.assert_frame_equal(a[name][numeric], b[name][numeric], rtol=1e-6, atol=1e-9)


def test_assign_balances_work_not_counts():
    owner = assign({"long": 100, "a": 30, "b": 30, "c": 30, "d": 10}, 2)
    loads = [sum(c for k, c in {"long": 100, "a": 30, "b": 30, "c": 30, "d": 10}.items() if owner[k] == r)
             for r in range(2)]
    assert sorted(loads) == [100, 100]


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process_and_resume_after_a_killed_rank(tmp_path):
    single, multi, killed = tmp_path / "single", tmp_path / "multi", tmp_path / "killed"
    assert compute(single).wait(timeout=300) == 0
    assert compute(multi, nproc=2).wait(timeout=300) == 0
    assert (multi / "shards" / "rank0").is_dir() and (multi / "shards" / "rank1").is_dir()
    assert_same(tables(single), tables(multi))

    proc = compute(killed, nproc=2, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(list((killed / "shards" / "rank1").glob("*.samples.parquet"))) >= 3:
            workers = subprocess.run(["pgrep", "-f", "-P", str(proc.pid), "layergrad"], capture_output=True,
                                     text=True).stdout.split()
            os.kill(int(workers[-1]), signal.SIGKILL)  # one rank dies; torchrun stops the job
            break
        time.sleep(0.02)
    assert proc.wait(timeout=300) != 0
    assert not (killed / "stats.parquet").exists()
    assert compute(killed, nproc=2).wait(timeout=300) == 0
    assert_same(tables(single), tables(killed))


@pytest.mark.slow
def test_torchrun_two_ranks_score_one_file_in_input_order_equal_to_one_process(tmp_path):
    import json

    rows = [{"instruction": f"Say {i} in words.", "output": f"{i} is " + "a number " * (1 + i % 5)} for i in range(23)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def score(out, nproc=None):
        args = ["-m", "layergrad", "score", str(data), "--model", "tiny-random-llama", "-q", "--window", "4",
                "--out", str(out)]
        if nproc:
            args = ["-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port", str(free_port())] + args
        return subprocess.run([sys.executable, *args], env=env, timeout=300).returncode

    assert score(tmp_path / "one") == 0 and score(tmp_path / "two", nproc=2) == 0
    assert (tmp_path / "two" / "run" / "shards" / "rank1").is_dir()
    one = pd.read_parquet(tmp_path / "one" / "scored.parquet")
    two = pd.read_parquet(tmp_path / "two" / "scored.parquet")
    assert list(two.instruction) == [r["instruction"] for r in rows]  # input order
    numeric = [c for c in one.columns if c.startswith("lg_") and one[c].dtype.kind == "f"]
    pd.testing.assert_frame_equal(two[numeric], one[numeric], rtol=1e-5, atol=0)
