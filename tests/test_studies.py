"""A study of one's own as data: conditions by source and attributes, claims by kind and parameters —
run end to end from a YAML file, names that change nothing but names, one-line errors for bad files."""

import json
import random

import pandas as pd
import pytest
import yaml

import layergrad
from layergrad.cli import main

STUDY = """\
name: filter-check
conditions:
  kept:    {source: data/kept.jsonl,    attributes: {split: kept}}
  dropped: {source: data/dropped.jsonl, attributes: {split: dropped}}
claims:
  - id: C1
    statement: "Kept data has a higher effective rank in the late layers"
    statistic: effective_rank
    layers: late
    compare: {split: [kept, dropped]}   # first minus second
    direction: greater
  - id: C2
    statement: "Kept and dropped do not differ in nuclear norm"
    statistic: nuclear_norm
    layers: all
    compare: {split: [kept, dropped]}
    direction: equivalent
    margin: 0.05                         # relative
"""
FAST = ["--model", "tiny-random-llama", "--bootstrap", "50", "--metrics", "nuclear_norm,effective_rank", "--quiet",
        "--no-task-reports"]
WORDS = "we check every step and then add the numbers to find the answer".split()


def write_data(folder, n: int = 6) -> None:
    """Kept: longer, varied answers; dropped: shorter ones, their lengths overlapping (different records, as a filter
    leaves them)."""
    rng = random.Random(0)
    (folder / "data").mkdir(parents=True)
    for name, words in (("kept", (4, 20)), ("dropped", (3, 16))):
        rows = [{"instruction": f"Task {name} {i}: how much is {i} + {2 * i}?",
                 "output": " ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))) + f" It is {3 * i}."}
                for i in range(n)]
        (folder / "data" / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    write_data(root)
    (root / "my-study.yaml").write_text(STUDY)
    assert main(["reproduce", "--study", str(root / "my-study.yaml"), *FAST, "--reinit-control",
                 "--out", str(root / "out")]) == 0
    return root


def test_a_study_file_runs_end_to_end_with_the_papers_rigour(study_run):
    claims = pd.read_csv(study_run / "out" / "claims.csv")
    modules = claims[claims.module != "all modules"]
    assert set(claims.claim) == {"C1", "C2"} and len(modules[modules.claim == "C1"]) == 7
    assert set(modules.verdict) <= {"holds", "fails", "inconclusive"}
    c1s = modules[modules.claim == "C1"]
    assert c1s.rests_on.str.startswith("adjusted effect at equal length").all()  # the lengths overlap
    assert modules[["effect", "ci_low", "ci_high", "p", "p_holm", "n"]].notna().all().all()
    assert (modules.a == "dropped").all() and (modules.b == "kept").all() and (modules.n == 6).all()
    c1 = modules[modules.claim == "C1"].iloc[0]
    assert "late layers, kept vs dropped" in c1.effect_kind
    # the caveats: the length overlap, the AUROC of length and loss for the pair, the increment, random weights
    assert "AUROC length" in c1.caveats and "loss" in c1.caveats and "random weights:" in c1.caveats
    assert "length" in c1.caveats and ("profile" in c1.caveats or "gradient" in c1.caveats)
    c2 = modules[modules.claim == "C2"]
    assert (c2.definition.str.contains("within ±0.05")).all()
    inconclusive = modules[modules.verdict == "inconclusive"]
    decidable = inconclusive[inconclusive.n_to_decide.notna()]
    assert len(decidable) and (decidable.n_to_decide > decidable.n).all()  # the per-side count that would decide it
    report = (study_run / "out" / "report.html").read_text()
    assert "C1" in report and "Kept data has a higher effective rank" in report
    assert (study_run / "out" / "analysis" / "filter-check" / "curves.csv").exists()


def test_renaming_the_conditions_changes_nothing_but_the_names(study_run, tmp_path):
    renamed = STUDY.replace("kept:   ", "alpha:  ").replace("dropped:", "beta:   ")
    study = yaml.safe_load(renamed)
    study["conditions"] = {k: {**v, "source": str(study_run / v["source"])} for k, v in study["conditions"].items()}
    out = layergrad.reproduce(study, out=tmp_path / "renamed", model="tiny-random-llama", bootstrap=50,
                              metrics=("nuclear_norm", "effective_rank"), quiet=True, task_reports=False,
                              reinit_control=True, log=lambda *a: None)
    first = pd.read_csv(study_run / "out" / "claims.csv")
    again = pd.read_csv(out / "claims.csv")
    names = {"alpha": "kept", "beta": "dropped"}
    for column in ("a", "b"):
        again[column] = again[column].map(lambda v: names.get(v, v))
    for column in ("caveats", "confounded_by"):
        again[column] = again[column].astype(object).fillna("").str.replace("alpha", "kept").str.replace("beta",
                                                                                                       "dropped")
        first[column] = first[column].astype(object).fillna("")
    pd.testing.assert_frame_equal(again, first)  # same process, same inputs, same draws: equal by construction


def bad(tmp_path, capsys, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    write_data(tmp_path) if not (tmp_path / "data").exists() else None
    assert main(["reproduce", "--study", str(path), "--model", "no-such-model", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and not (tmp_path / "o" / "run").exists()
    return err


@pytest.mark.parametrize("mistake,expected", [
    (("statistic: effective_rank", "statistic: effective_rnak"),
     "line 8, claims.0.statistic: unknown statistic 'effective_rnak'. Did you mean 'effective_rank'"),
    (("compare: {split: [kept, dropped]}   # first", "compare: {split: [kept, droped]}   # first"),
     "line 10, claims.0.compare: no condition has split: droped. Did you mean 'dropped'"),
    (("data/dropped.jsonl", "data/dropt.jsonl"), "line 4, conditions.dropped: data file not found"),
    (("direction: greater", "direction: bigger"), "line 11, claims.0.direction: unknown direction 'bigger'"),
    (("    margin: 0.05", "    margn: 0.05"), "line 18, claims.1.margn: unknown key 'margn'. Did you mean 'margin'"),
    (("layers: late", "layers: latest"), "line 9, claims.0.layers: unknown layers 'latest'"),
    (("    margin: 0.05", "    margin: 0.05\n    options: {effect_knd: words}"),
     "line 19, claims.1.options.effect_knd: unknown option 'effect_knd' of a difference claim with caveat controls. "
     "Did you mean 'effect_kind'"),
    (("    margin: 0.05", "    margin: 0.05\n    kind: diference"),
     "line 19, claims.1.kind: unknown claim kind 'diference'. Did you mean 'difference'"),
    (("    margin: 0.05", "    margin: 0.05\n    caveat: lenght"),
     "line 19, claims.1.caveat: unknown caveat 'lenght'. Did you mean 'length'"),
    (("name: filter-check", "name: [filter"), "line 2: malformed YAML"),
])
def test_a_bad_study_file_is_one_line_naming_the_key_and_line_before_any_model_work(tmp_path, capsys, mistake,
                                                                                     expected):
    err = bad(tmp_path, capsys, STUDY.replace(*mistake))
    assert expected in err and "bad.yaml" in err, err


def test_an_unknown_study_name_is_one_line(capsys, tmp_path):
    assert main(["reproduce", "--study", "papr", "--out", str(tmp_path / "o")]) == 2
    assert "unknown study 'papr': use paper or followup, or the path of a study file" in capsys.readouterr().err


@pytest.mark.integration
def test_the_study_file_on_smollm2(tmp_path):
    write_data(tmp_path, n=4)
    (tmp_path / "my-study.yaml").write_text(STUDY)
    assert main(["reproduce", "--study", str(tmp_path / "my-study.yaml"), "--model", "smollm2-135m-instruct",
                 "--bootstrap", "50", "--quiet", "--no-task-reports", "--out", str(tmp_path / "out")]) == 0
    claims = pd.read_csv(tmp_path / "out" / "claims.csv")
    modules = claims[claims.module != "all modules"]
    assert set(modules.claim) == {"C1", "C2"} and len(modules) == 14 and modules.verdict.notna().all()
    assert modules.caveats.str.contains("AUROC length").all()
