"""The run directory: a different config is refused, config.yaml replays the run (also one an
earlier version wrote), a SIGKILL at any point then a rerun equals an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from layergrad.cli import main
from layergrad.runs.config import RunConfig

TINY = ["--model", "tiny-random-llama", "--quiet"]


def run_cli(*args, capsys):
    code = main(list(args))
    return code, capsys.readouterr().err.strip()


def test_different_config_refuses_and_keeps_results(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert run_cli("compute", *TINY, "--data", "a=builtin:arith/none?n=2", "--out", out, capsys=capsys)[0] == 0
    before = (Path(out) / "stats.parquet").read_bytes()
    code, err = run_cli("compute", *TINY, "--data", "a=builtin:arith/none?n=2", "--out", out, "--modules", "attn",
                        capsys=capsys)
    assert code == 2 and "modules" in err and "--overwrite" in err
    assert (Path(out) / "stats.parquet").read_bytes() == before


def _compute_cmd(out):
    return [sys.executable, "-m", "layergrad", "compute", *TINY, "--batch-size", "1", "--out", str(out),
            "--data", "a=builtin:arith/detailed?n=30", "--data", "b=builtin:arith/none?n=30"]


@pytest.mark.slow  # processes killed and resumed: not numerics, so not rerun under other kernels
def test_sigkill_at_several_points_then_resume_equals_uninterrupted(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(_compute_cmd(clean), check=True, timeout=600)
    for kill_after_chunks in (1, 20, 45):
        proc = subprocess.Popen(_compute_cmd(killed))
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if len(list((killed / "chunks").glob("*.samples.parquet"))) >= kill_after_chunks:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait()
    subprocess.run(_compute_cmd(killed), check=True, timeout=600)
    for name, keys in (("stats", ["condition", "sample_id", "param"]), ("samples", ["condition", "sample_id"])):
        a = pd.read_parquet(clean / f"{name}.parquet").sort_values(keys).reset_index(drop=True)
        b = pd.read_parquet(killed / f"{name}.parquet").sort_values(keys).reset_index(drop=True)
        assert not b.duplicated(keys).any()
        pd.testing.assert_frame_equal(a, b)
    chunk_samples = pd.concat(pd.read_parquet(p) for p in (killed / "chunks").glob("*.samples.parquet"))
    assert not chunk_samples.duplicated(["condition", "sample_id"]).any()


def test_config_yaml_replays_the_run(tmp_path, capsys):
    first, replay = tmp_path / "first", tmp_path / "replay"
    assert run_cli("compute", *TINY, "--data", "a=builtin:arith/simplified?n=3", "--modules", "attn",
                   "--max-length", "400", "--out", str(first), capsys=capsys)[0] == 0
    assert run_cli("compute", "--config", str(first / "config.yaml"), "--out", str(replay), capsys=capsys)[0] == 0
    a, b = (pd.read_parquet(d / "stats.parquet") for d in (first, replay))
    assert set(a.module) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    pd.testing.assert_frame_equal(a, b)
    # the replay's own config equals the first's except for --out
    import yaml
    ca, cb = (yaml.safe_load((d / "config.yaml").read_text()) for d in (first, replay))
    assert {k for k in ca if ca[k] != cb[k]} == {"out"}


def test_a_run_directory_of_the_earlier_flat_layout_resumes(tmp_path, capsys):
    """config.yaml of earlier versions: every option at the top level, with 'segments' and 'overlap'."""
    out = tmp_path / "r"
    assert run_cli("compute", *TINY, "--data", "a=builtin:arith/none?n=2", "--out", str(out), capsys=capsys)[0] == 0
    flat = {"model": "tiny-random-llama", "data": {"a": "builtin:arith/none?n=2"}, "out": str(out), "modules": None,
            "paper": False, "limit": None, "batch_size": None, "batch_tokens": None, "dtype": "float32",
            "device": "auto", "device_map": None, "max_length": None, "route": "auto", "solver": "auto",
            "overlap": None, "segments": "auto", "threads": None, "spectrum": False, "cosine": False,
            "append_eos": True, "system_prompt": None, "chat": None, "trust_remote_code": False, "paper_data": None,
            "quiet": True, "overwrite": False}
    (out / "config.yaml").write_text(yaml.safe_dump(flat))
    assert RunConfig.from_dict(flat).result_fingerprint() == RunConfig.build(**flat).result_fingerprint()
    code, err = run_cli("compute", *TINY, "--data", "a=builtin:arith/none?n=2", "--out", str(out), capsys=capsys)
    assert code == 0, err
    code, err = run_cli("compute", *TINY, "--data", "a=builtin:arith/none?n=2", "--out", str(out), "--cosine",
                        capsys=capsys)
    assert code == 2 and "cosine" in err
