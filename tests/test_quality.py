"""Judging training data: the records' own fields carried, correlations, IFD as a baseline, the
random-weights control, and `layergrad score` with its selection (on tiny models; the follow-up's
data where it is beside the checkout)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from layergrad.cli import main

TINY = ["--model", "tiny-random-llama", "-q"]
FIELDS = ("reward", "ifd_gpt2", "diff", "instag")


@pytest.mark.slow
def test_record_fields_travel_and_are_correlated(followup_data, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "analysis"
    files = {s: followup_data / "reward" / f"wiz_10k_{s}_200.json" for s in ("highest", "lowest")}
    assert main(["compute", *TINY, "--ifd", "--limit", "14", "--data",
                 f"high={files['highest']}", "--data", f"low={files['lowest']}", "--out", str(run)]) == 0
    samples = pd.read_parquet(run / "samples.parquet")
    for field in FIELDS:
        assert samples[f"meta.{field}"].dtype == float, field
    assert samples["meta.raw_instag"].map(type).eq(str).all()  # the judge's text kept as text
    records = json.loads(files["highest"].read_text())
    high = samples[samples.condition == "high"].set_index("source_index")
    assert len(high) == 14 and high.index.max() > 13  # --limit: a random subsample of the 200, not the first 14
    assert [high.loc[i, "meta.reward"] for i in high.index] == [float(records[i]["reward"]) for i in high.index]
    assert (samples.status == "ok").sum() >= 16
    assert main(["analyze", str(run), "--out", str(out), "--bootstrap", "100", "--formats", "png", "-q"]) == 0
    corr = pd.read_csv(out / "correlations.csv")
    assert set(FIELDS) <= set(corr.field) and {"high+low", "high", "low"} == set(corr.scope)
    assert corr.p.between(0, 1).all()
    assert {"mean nuclear_norm", "mean effective_rank", "loss", "response length (tokens)", "IFD"} <= set(corr.score)
    assert corr[["spearman", "partial_spearman"]].abs().max().max() <= 1 + 1e-9
    assert (corr.ci_low <= corr.spearman + 1e-12).all() and (corr.spearman <= corr.ci_high + 1e-12).all()
    auroc = pd.read_csv(out / "auroc.csv")
    assert {"loss", "response length (tokens)", "IFD"} <= set(auroc[auroc.kind == "baseline"].score)
    assert "beyond loss, length and IFD" in pd.read_csv(out / "increment.csv").verdict.iloc[0]
    html = (out / "report.html").read_text()
    assert "given log response length" in html and "AUROC of IFD" in html


def test_metadata_never_overwrites_layergrads_columns(tiny, tmp_path):
    import layergrad

    rows = [{"instruction": f"What is {i}+1?", "output": str(i + 1), "loss": "123", "sample_id": "mine",
             "status": "weird", "tags": ["a", "b"], "note": "free text", "score": None if i else "n/a"}
            for i in range(4)] + [{"instruction": "Empty?", "output": "  ", "loss": "1"}]
    (tmp_path / "x.json").write_text(json.dumps(rows))
    samples = layergrad.load_samples(str(tmp_path / "x.json"), strict=False)
    frame = layergrad.compute(tiny(), samples).attrs["samples"].set_index("source_index")
    assert (frame.loc[:3, "loss"] < 100).all() and frame.loc[0, "sample_id"] != "mine"
    assert (frame.loc[:3, "meta.loss"] == 123.0).all() and frame.loc[0, "meta.sample_id"] == "mine"
    assert frame.loc[0, "meta.tags"] == '["a", "b"]' and frame.loc[0, "meta.note"] == "free text"
    assert frame.loc[0, "meta.score"] == "n/a" and pd.isna(frame.loc[1, "meta.score"])
    assert frame.loc[4, "status"] == "skipped" and "empty response" in frame.loc[4, "reason"]


def test_random_weights_control(tmp_path, capsys):
    data = ["--data", "a=builtin:arith/detailed?n=3", "--data", "b=builtin:arith/none?n=3"]
    for name, extra in (("trained", []), ("r0", ["--reinit", "0"]), ("r0-again", ["--reinit", "0"]),
                        ("r1", ["--reinit", "1"])):
        assert main(["compute", *TINY, *data, *extra, "--out", str(tmp_path / name)]) == 0
    stats = {n: pd.read_parquet(tmp_path / n / "stats.parquet") for n in ("trained", "r0", "r0-again", "r1")}
    pd.testing.assert_frame_equal(stats["r0"], stats["r0-again"], check_exact=True)  # same seed, same process, same kernels
    assert not stats["r0"].nuclear_norm.equals(stats["trained"].nuclear_norm)
    assert not stats["r0"].nuclear_norm.equals(stats["r1"].nuclear_norm)
    manifest = json.loads((tmp_path / "r0" / "run.json").read_text())
    assert manifest["config"]["compute"]["reinit"] == 0 and manifest["model"]["reinit"] == 0
    capsys.readouterr()
    assert main(["compute", *TINY, *data, "--reinit", "1", "--out", str(tmp_path / "r0")]) == 2
    assert "reinit" in capsys.readouterr().err


def test_reinit_in_python_leaves_the_callers_model_alone(tiny):
    import layergrad

    m = tiny()
    before = m.model.model.layers[0].self_attn.q_proj.weight.clone()
    samples = layergrad.load_samples("builtin:arith/none?n=2")
    a = layergrad.compute(m, samples, reinit=3)
    assert (m.model.model.layers[0].self_attn.q_proj.weight == before).all()
    assert a.attrs["model"]["reinit"] == 3
    # the same seed's copy computed again in this process (same calls, kernels and plan): equal by construction
    pd.testing.assert_frame_equal(a, layergrad.compute(m, samples, reinit=3), check_exact=True)


def fifty_records(tmp_path):
    path = tmp_path / "fifty.jsonl"
    rows = [{"instruction": f"Question {i}: how much is {i} + {i}?", "output": f"It is {2 * i}. " * (1 + i % 4),
             "source": f"pool-{i % 3}", "quality": str(i / 10)} for i in range(50)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def score_cmd(data, out, *extra):
    return [sys.executable, "-m", "layergrad", "score", str(data), *TINY, "--out", str(out), *extra]


@pytest.mark.slow  # processes killed and resumed: not numerics, so not rerun under other kernels
def test_score_writes_every_record_and_the_selection_and_resumes_after_kill(tmp_path):
    import datasets

    data, rows = fifty_records(tmp_path)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(score_cmd(data, clean, "--top", "10", "--by", "effective_rank"), check=True, timeout=600)
    scored = [json.loads(line) for line in (clean / "scored.jsonl").read_text().splitlines()]
    assert len(scored) == 50 and all({**r, **s} == s for r, s in zip(rows, scored))  # every field kept
    assert all(s["lg_status"] == "ok" and s["lg_effective_rank"] > 0 for s in scored)
    top = [json.loads(line) for line in (clean / "top-10-effective_rank.jsonl").read_text().splitlines()]
    best = sorted(scored, key=lambda s: -s["lg_effective_rank"])[:10]
    assert top == [r for r in rows if r in [{k: s[k] for k in r} for s in best]]  # the 10 best, input order
    assert datasets.load_dataset("json", data_files=str(clean / "scored.jsonl"), split="train").num_rows == 50
    assert datasets.load_dataset("json", data_files=str(clean / "top-10-effective_rank.jsonl"),
                                 split="train").num_rows == 10
    assert pd.read_parquet(clean / "scored.parquet").shape[0] == 50

    proc = subprocess.Popen(score_cmd(data, killed, "--top", "10", "--by", "effective_rank", "--window", "5"))
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(list((killed / "run" / "chunks").glob("*.samples.parquet"))) >= 4:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    done = len(list((killed / "run" / "chunks").glob("*.samples.parquet")))
    assert 4 <= done < 10  # windows of 5 records, each one committed chunk
    subprocess.run(score_cmd(data, killed, "--top", "10", "--by", "effective_rank", "--window", "5"), check=True,
                   timeout=600)
    assert len(list((killed / "run" / "chunks").glob("*.samples.parquet"))) == 10  # only the missing windows ran
    # the resumed part is batched differently: its values agree to a stated tolerance, not bit for bit,
    # and the selection is the same because the 10th and 11th best lie further apart than that
    again = [json.loads(line) for line in (killed / "scored.jsonl").read_text().splitlines()]
    np.testing.assert_allclose([s["lg_effective_rank"] for s in again], [s["lg_effective_rank"] for s in scored],
                               rtol=1e-6)
    ranks = sorted((s["lg_effective_rank"] for s in scored), reverse=True)
    assert ranks[9] - ranks[10] > 1e-5 * ranks[9]
    assert (killed / "top-10-effective_rank.jsonl").read_text() == (clean / "top-10-effective_rank.jsonl").read_text()


def test_score_selects_in_the_inputs_own_format(tmp_path):
    import layergrad

    rows = [{"instruction": f"Say {i}.", "output": f"{i} " * (1 + i), "grade": i} for i in range(12)]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    table = layergrad.score(str(tmp_path / "d.json"), tmp_path / "out", model="tiny-random-llama", bottom=0.25,
                            by="lg_response_tokens", quiet=True, log=lambda *a: None)
    picked = json.loads((tmp_path / "out" / "bottom-0.25-response_tokens.json").read_text())
    assert picked == rows[:3] and len(table) == 12  # the three shortest, as a JSON list like the input
    again = layergrad.score(str(tmp_path / "d.json"), tmp_path / "out", model="tiny-random-llama", top=2,
                            by="lg_response_tokens", quiet=True, log=lambda *a: None)  # still the function
    longest = set(table.lg_response_tokens.nlargest(2, keep="first").index)
    picked = json.loads((tmp_path / "out" / "top-2-response_tokens.json").read_text())
    assert sorted(r["grade"] for r in picked) == sorted(int(table.loc[i, "grade"]) for i in longest)
    # equal by construction: the second call computes nothing and reads the same committed chunks
    pd.testing.assert_frame_equal(again, table)


@pytest.mark.parametrize("args,needle", [
    (["--by", "effective_rnk"], "unknown score 'effective_rnk'. Did you mean 'effective_rank'? Scores: nuclear_norm"),
    (["--by", "ifd"], "--by ifd needs --ifd"),
    (["--top", "zero"], "--top takes a number of records"),
])
def test_bad_score_options_are_one_line_before_the_model_loads(tmp_path, capsys, args, needle):
    data, _ = fifty_records(tmp_path)
    assert main(["score", str(data), *TINY, "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and not (tmp_path / "o" / "run").exists()


def test_resample_ranks_are_scipys_average_ranks():
    import numpy as np
    import scipy.stats as st

    from layergrad.analysis.correlations import resample_ranks

    rng = np.random.default_rng(1)
    for v in (rng.normal(size=50), rng.integers(0, 4, 50).astype(float), np.array([1.0, 1, 2, 3, 3, 3])):
        index = rng.integers(0, len(v), (200, len(v)))
        # exact by construction: average ranks are integers or halves, exactly representable on any CPU
        np.testing.assert_array_equal(resample_ranks(v, index), st.rankdata(v[index], axis=1))


def test_the_correlation_figure_of_two_runs_shows_the_first_runs_pool():
    """compare of two runs has one pooled scope per run: the figure draws the first (it failed on the
    duplicate scores before)."""
    from layergrad.analysis.figures import correlations

    rows = [{"scope": f"{run}:a+{run}:b", "field": "reward", "score": score, "n": 8, "spearman": rho,
             "ci_low": rho - 0.2, "ci_high": rho + 0.2, "p": 0.1, "partial_spearman": rho / 2,
             "partial_ci_low": rho / 2 - 0.2, "partial_ci_high": rho / 2 + 0.2}
            for run, rho in (("one", 0.5), ("two", -0.5)) for score in ("loss", "mean effective_rank")]
    fig = correlations(pd.DataFrame(rows))
    points = fig.axes[0].lines[0].get_xdata()
    assert list(points) == [0.5, 0.5] and "one:a+one:b" in fig._suptitle.get_text()
