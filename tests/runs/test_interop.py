"""Export to the original's JSONL and import back: identical statistics; hand-made files load."""

import json

import numpy as np
import pandas as pd
import pytest

from layergrad.cli import main
from layergrad.runs.store import load_run


def test_export_then_import_round_trips_exactly(tiny_run, tmp_path, capsys):
    assert main(["export", str(tiny_run), "--out", str(tmp_path / "orig")]) == 0
    files = sorted(p.name for p in (tmp_path / "orig").iterdir())
    assert files == ["detailed.jsonl", "detailed@irrelevant.jsonl", "none.jsonl", "none@irrelevant.jsonl"]
    first = json.loads((tmp_path / "orig" / "none.jsonl").read_text().splitlines()[0])
    keys = list(first)
    assert keys[:4] == ["instruction", "output", "loss", "model.layers.0.self_attn.q_proj.weight"]
    assert "model.layers.0.mlp.down_proj.weight" in first
    assert {"frobenius_norm", "S_sum", "S_max", "S_min", "S_list"} <= set(first["model.layers.0.self_attn.q_proj.weight"])

    assert main(["import", str(tmp_path / "orig"), "--out", str(tmp_path / "back")]) == 0
    stats_a, samples_a, _ = load_run(tiny_run)
    stats_b, samples_b, _ = load_run(tmp_path / "back")
    stats_b = stats_b.set_index(["condition", "sample_id", "param"]).loc[
        stats_a.set_index(["condition", "sample_id", "param"]).index].reset_index()
    cols = ["layer", "module", "nuclear_norm", "sigma_max", "sigma1_ratio", "frobenius_norm", "effective_rank",
            "stable_rank", "sigma_min", "rank_bound"]
    pd.testing.assert_frame_equal(stats_a[cols].reset_index(drop=True), stats_b[cols], check_dtype=False)
    key = ["condition", "sample_id"]
    a, b = samples_a.sort_values(key).reset_index(drop=True), samples_b.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_import_hand_made_original_file(tmp_path):
    entry = {"M_mean": 0.0, "M_max": 1.0, "M_min": -1.0, "frobenius_norm": 5.0, "S_sum": 7.0, "S_max": 4.0, "S_min": 0.0}
    lines = []
    for i, (instr, loss) in enumerate([("What is 1+1?", 0.5), ("Name a colour.", 1.5)]):
        rec = {"instruction": instr, "output": "2" if i == 0 else "red", "loss": loss}
        for layer in range(2):
            for p in "qkvo":
                rec[f"model.layers.{layer}.self_attn.{p}_proj.weight"] = entry
        lines.append(json.dumps(rec))
    path = tmp_path / "gsm8k_no_cot.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert main(["import", f"none={path}", "--out", str(tmp_path / "run")]) == 0
    stats, samples, manifest = load_run(tmp_path / "run")
    assert len(stats) == 2 * 2 * 4 and set(stats.module) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    row = stats.iloc[0]
    assert row.nuclear_norm == 7.0 and row.sigma_max == 4.0 and row.sigma1_ratio == pytest.approx(4 / 7)
    assert row.stable_rank == pytest.approx(25 / 16)
    assert list(samples.loss) == [0.5, 1.5] and set(samples.condition) == {"none"}
    assert samples.prompt.tolist() == ["What is 1+1?", "Name a colour."]


def test_import_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "output": "y", "loss": 1.0}\n{not json\n')
    assert main(["import", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.jsonl:1" in err
    assert main(["import", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_analyze_works_on_an_imported_original_run(tmp_path):
    rng = np.random.default_rng(0)
    for condition, scale in (("none", 10.0), ("detailed", 1.0)):
        lines = []
        for i in range(8):
            rec = {"instruction": f"Question {i}?", "output": f"{condition} answer {i}", "loss": 1.0}
            for layer in range(6):
                for p in "qkvo":
                    s_sum = scale * (1 + rng.random())
                    rec[f"model.layers.{layer}.self_attn.{p}_proj.weight"] = {
                        "M_mean": 0.0, "M_max": 0.1, "M_min": -0.1, "frobenius_norm": s_sum / 3, "S_sum": s_sum,
                        "S_max": s_sum / 4, "S_min": 0.0}
            lines.append(json.dumps(rec))
        (tmp_path / f"{condition}.jsonl").write_text("\n".join(lines))
    assert main(["import", str(tmp_path / "none.jsonl"), str(tmp_path / "detailed.jsonl"),
                 "--out", str(tmp_path / "run")]) == 0
    assert main(["analyze", str(tmp_path / "run"), "--out", str(tmp_path / "a"), "--bootstrap", "100",
                 "--formats", "png", "-q"]) == 0
    tests = pd.read_csv(tmp_path / "a" / "tests.csv")
    early = tests[(tests.unit == "early") & (tests.metric == "nuclear_norm")]
    assert len(early) == 4 and early.paired.all() and (early.rel_change < -0.8).all()
    assert "H1" in (tmp_path / "a" / "report.html").read_text()
