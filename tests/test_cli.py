"""The CLI contract: outputs, one-line errors with exit codes, resume after SIGKILL."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from layergrad.cli import main

TINY = ["--model", "tiny-random-llama", "--quiet"]


def run_cli(*args, capsys):
    code = main(list(args))
    err = capsys.readouterr().err.strip()
    return code, err


def test_compute_writes_the_documented_tables(tmp_path, capsys):
    out = tmp_path / "run"
    code, _ = run_cli("compute", *TINY, "--data", "a=builtin:arith/none?n=3", "--data",
                      "b=builtin:arith/simplified?n=3", "--out", str(out), capsys=capsys)
    assert code == 0
    stats = pd.read_parquet(out / "stats.parquet")
    samples = pd.read_parquet(out / "samples.parquet")
    for col in ("sample_id", "condition", "layer", "module", "param", "nuclear_norm", "sigma_max", "sigma1_ratio",
                "frobenius_norm", "effective_rank", "stable_rank", "rank_bound"):
        assert col in stats.columns
    for col in ("sample_id", "condition", "source_index", "loss", "n_tokens", "n_prompt_tokens",
                "n_response_tokens", "truncated", "status", "reason"):
        assert col in samples.columns
    assert len(stats) == 6 * 4 * 7 and set(samples.condition) == {"a", "b"}
    assert (out / "run.json").exists() and (out / "config.yaml").exists()


@pytest.mark.parametrize("args,needle", [
    (["--data", "a=/no/such/file.json"], "data file not found"),
    (["--data", "a=builtin:arith/none?n=2", "--model", "tiny-random-lama"], "Did you mean 'tiny-random-llama'"),
    (["--data", "a=builtin:arith/none?n=2", "--route", "fast"], "Invalid value for '--route'"),
    (["--data", "a=builtin:arith/bogus"], "unknown built-in source"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, needle):
    code, err = run_cli("compute", *TINY, "--out", str(tmp_path / "r"), *args, capsys=capsys)
    assert code == 2 and needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_bad_files_and_directories(tmp_path, capsys):
    bad_yaml = tmp_path / "run.yaml"
    bad_yaml.write_text("model: [unclosed\n")
    code, err = run_cli("compute", "--config", str(bad_yaml), capsys=capsys)
    assert code == 2 and "malformed YAML" in err
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    code, err = run_cli("compute", *TINY, "--data", f"a={empty}", "--out", str(tmp_path / "r"), capsys=capsys)
    assert code == 2 and "no samples" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run_cli("compute", *TINY, "--data", "a=builtin:arith/none?n=2", "--out", str(blocker / "sub"),
                        capsys=capsys)
    assert code == 2 and "cannot create run directory" in err


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
            "--data", "a=builtin:arith/detailed?n=60", "--data", "b=builtin:arith/none?n=60"]


def test_sigkill_at_several_points_then_resume_equals_uninterrupted(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(_compute_cmd(clean), check=True, timeout=600)
    for kill_after_chunks in (1, 15, 40, 70):
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
