"""`layergrad reproduce`: the paper's grid, every claim per task, resume after kill -9, and the
same numbers as compute + analyze by hand."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from layergrad.studies.paper import CLAIMS
from layergrad.cli import main
from layergrad.reproduction import GROUPS, grid

VERDICTS = {"holds", "fails", "inconclusive", "confounded", "not-applicable"}
FAST = ["--model", "tiny-random-llama", "--bootstrap", "20", "--metrics", "nuclear_norm", "--quiet"]


SOME_TASKS = {"cot": "gsm8k", "math": "math-algebra", "wiki": "wiki"}  # a task of every group


def reproduce_cmd(out, paper_data, *extra):
    return [sys.executable, "-m", "layergrad", "reproduce", *FAST, "--paper-data", paper_data, "--limit", "2",
            "--tasks", ",".join(SOME_TASKS.values()), "--no-task-reports", "--out", str(out), *extra]


def tables(out: Path) -> dict[str, pd.DataFrame]:
    found = {"claims": pd.read_csv(out / "claims.csv")}
    for path in sorted((out / "analysis").glob("*/*.csv")):
        found[f"{path.parent.name}/{path.stem}"] = pd.read_csv(path)
    stats = pd.read_parquet(out / "run" / "stats.parquet")
    found["stats"] = stats.sort_values(["condition", "sample_id", "param"]).reset_index(drop=True)
    return found


@pytest.mark.slow  # processes killed and resumed: not numerics, so not rerun under other kernels
def test_every_claim_of_every_task_and_resume_after_kill(paper_data, tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(reproduce_cmd(clean, paper_data), check=True, timeout=900)
    claims = pd.read_csv(clean / "claims.csv")
    summary = claims[claims.module == "all modules"]
    assert set(summary.verdict) <= VERDICTS and summary.verdict.notna().all()
    assert set(summary.task) == set(SOME_TASKS.values())
    for group, task in SOME_TASKS.items():
        family = "wiki" if group == "wiki" else "reasoning"
        assert set(summary[summary.task == task].claim) == {c.id for c in CLAIMS if c.where["family"] == family
                                                             and not c.between_runs}
    math = summary[summary.task == "math-algebra"].set_index("claim").verdict
    assert math["H1"] == math["H2"] == math["H5"] == "not-applicable"  # MATH has no None CoT
    assert (claims[claims.module != "all modules"].verdict.isin(VERDICTS - {"not-applicable"})).all()
    assert (clean / "report.html").exists() and (clean / "reproduce.yaml").exists()

    proc = subprocess.Popen(reproduce_cmd(killed, paper_data))
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if len(list((killed / "run" / "chunks").glob("*.samples.parquet"))) >= 12:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    subprocess.run(reproduce_cmd(killed, paper_data), check=True, timeout=900)
    a, b = tables(clean), tables(killed)
    assert a.keys() == b.keys() and len(a) > 20 and set(GROUPS) == set(SOME_TASKS)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)


@pytest.mark.slow
def test_the_same_numbers_as_compute_and_analyze_by_hand(paper_data, tmp_path):
    out = tmp_path / "repro"
    assert main(["reproduce", *FAST, "--paper-data", paper_data, "--limit", "3", "--tasks", "gsm8k",
                 "--no-task-reports", "--out", str(out)]) == 0
    data = [f"--data={name}={source}" for name, source in grid(["cot"], ["gsm8k"])["gsm8k"].items()]
    by_hand = tmp_path / "by-hand"
    assert main(["compute", "--model", "tiny-random-llama", "-q", "--paper-data", paper_data, "--limit", "3", *data,
                 "--out", str(by_hand / "run")]) == 0
    assert main(["analyze", str(by_hand / "run"), "--out", str(by_hand / "analysis"), "--bootstrap", "20",
                 "--metrics", "nuclear_norm", "--formats", "png", "-q"]) == 0
    for name in ("curves", "mad", "rd", "tests", "auroc", "increment", "claims"):
        pd.testing.assert_frame_equal(pd.read_csv(out / "analysis" / "gsm8k" / f"{name}.csv"),
                                      pd.read_csv(by_hand / "analysis" / f"{name}.csv"), obj=name)
    pd.testing.assert_frame_equal(pd.read_csv(out / "claims.csv"), pd.read_csv(by_hand / "analysis" / "claims.csv"))


@pytest.mark.slow
def test_the_random_weights_control_reaches_h1_h2_h5(paper_data, tmp_path):
    """--reinit-control on the first paper's study: the reasoning tasks once more under random weights
    (OUT/run-reinit), and H1, H2 and H5 quote their own row under random weights in the caveats."""
    out = tmp_path / "repro"
    assert main(["reproduce", *FAST, "--paper-data", paper_data, "--limit", "5", "--tasks", "gsm8k",
                 "--no-task-reports", "--reinit-control", "--out", str(out)]) == 0
    assert (out / "run-reinit").is_dir()
    claims = pd.read_csv(out / "claims.csv")
    for claim in ("H1", "H2", "H5"):
        rows = claims[(claims.claim == claim) & (claims.module == "q_proj")]
        assert rows.caveats.str.contains("random weights: ").all(), claim


@pytest.mark.slow
def test_compare_of_a_base_and_an_instruct_reproduction_adds_h4_and_h6(paper_data, tmp_path):
    for model in ("tiny-random-llama", "tiny-random-gpt2"):  # ChatML instruct / no template: base
        args = [a if a != "tiny-random-llama" else model for a in FAST]
        assert main(["reproduce", *args, "--paper-data", paper_data, "--limit", "4", "--tasks", "gsm8k",
                     "--no-task-reports", "--out", str(tmp_path / model)]) == 0
    out = tmp_path / "h4h6"
    assert main(["compare", str(tmp_path / "tiny-random-gpt2"), str(tmp_path / "tiny-random-llama"), "--out", str(out),
                 "--bootstrap", "20", "--metrics", "nuclear_norm", "--formats", "png", "-q"]) == 0
    claims = pd.read_csv(out / "claims.csv")
    summary = claims[claims.module == "all modules"].set_index("claim")
    assert {"H4", "H6"} <= set(summary.index) and summary.loc[["H4", "H6"], "verdict"].isin(VERDICTS).all()
    assert set(claims[claims.claim == "H4"].task) == {"gsm8k"}


def test_bad_groups_and_tasks_are_one_line(capsys, tmp_path):
    assert main(["reproduce", *FAST, "--groups", "cot,maths", "--out", str(tmp_path / "r")]) == 2
    assert "unknown group 'maths'. Did you mean 'math'?" in capsys.readouterr().err
    assert main(["reproduce", *FAST, "--groups", "math", "--tasks", "gsm8k", "--out", str(tmp_path / "r")]) == 2
    assert "unknown task 'gsm8k' in groups math" in capsys.readouterr().err
