"""`layergrad reproduce --study followup`: every (metric, pool) pair of a data folder found by its
layout (an unknown metric folder too), a missing file named in one line, claims F1-F4 and F6 per
cell with their controls, the random-weights control, and the first study unchanged."""

import json
import random

import pandas as pd
import pytest

from layergrad.cli import main

FAST = ["--model", "tiny-random-llama", "--bootstrap", "30", "--metrics", "nuclear_norm,effective_rank", "--quiet",
        "--no-task-reports"]
WORDS = "the model answers each question with care and a few words of reasoning before the end".split()


def records(n: int, long: bool, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.randint(30, 60) if long else rng.randint(3, 12)
        out.append({"instruction": f"Question {seed}-{i}: explain item {i}.",
                    "output": " ".join(rng.choice(WORDS) for _ in range(words)),
                    "reward": str(rng.uniform(-3, 3)), "instag": str(rng.randint(1, 9))})
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A follow-up data folder of the real layout: two known metrics, one the code has never heard of,
    a pair with its low file missing, and the two reasoning sets (short, so a tiny model fits them)."""
    root = tmp_path_factory.mktemp("followup")
    for k, (metric, pool) in enumerate([("reward", "wiz"), ("instag", "mag"), ("newscore", "her"),
                                        ("reward", "her")]):
        (root / metric).mkdir(exist_ok=True)
        (root / metric / f"{pool}_10k_highest_200.json").write_text(json.dumps(records(6, True, 2 * k)))
        if (metric, pool) != ("reward", "her"):
            (root / metric / f"{pool}_10k_lowest_200.json").write_text(json.dumps(records(6, False, 2 * k + 1)))
    (root / "reasoning").mkdir()
    for name, seed in (("gsm8k_R1.json", 10), ("s1_R1.json", 11)):
        rows = [{"instruction": r["instruction"], "output": " ".join([r["output"]] * 8)}
                for r in records(6, True, seed)]
        (root / "reasoning" / name).write_text(json.dumps(rows))
    return root


@pytest.fixture(scope="module")
def study(folder, paper_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "fu"
    assert main(["reproduce", "--study", "followup", *FAST, "--followup-data", str(folder), "--paper-data", paper_data,
                 "--limit", "4", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_every_pair_of_the_layout_gets_its_claims(study):
    claims = pd.read_csv(study / "claims.csv")
    summary = claims[claims.module == "all modules"]
    cells = {"reward/wiz", "instag/mag", "newscore/her"}
    assert cells | {"reasoning", "first256", "gsm8k"} == set(summary.task)
    for cell in cells:
        assert {"F1", "F2", "F3", "F6"} <= set(summary[summary.task == cell].claim), cell
    assert set(summary[summary.task == "reasoning"].claim) >= {"F4", "F6"}
    assert {"H1", "H2"} <= set(summary[summary.task == "gsm8k"].claim)  # the carry-over
    assert (claims.verdict.isin(["holds", "fails", "inconclusive", "confounded", "not-applicable"])).all()
    md = (study / "claims.md").read_text()
    assert "reward/her_10k_lowest_200.json is missing" in md.splitlines()[0]


def test_every_quality_cell_carries_its_controls(study):
    claims = pd.read_csv(study / "claims.csv")
    rows = claims[claims.claim.isin(["F1", "F2"]) & (claims.module != "all modules")]
    for caveat in rows.caveats:
        assert "length" in caveat and "AUROC length" in caveat and "IFD" in caveat and "random weights:" in caveat
    assert (study / "run-reinit" / "stats.parquet").exists()
    assert json.loads((study / "run-reinit" / "run.json").read_text())["config"]["compute"]["reinit"] == 0
    samples = pd.read_parquet(study / "run" / "samples.parquet")
    assert samples.ifd.notna().any() and "meta.reward" in samples.columns
    stats = pd.read_parquet(study / "run" / "stats.parquet")
    assert stats.cosine_pair.notna().any() and stats.cosine_next.notna().any()
    assert (study / "report.html").exists() and (study / "figures" / "followup_effective_rank.png").exists()


def test_the_trace_and_cosine_cells_carry_their_lengths_too(study):
    """F4 compares the s1 traces with another condition (of any task): its lengths and the baselines'
    AUROC of that pair; F6 is about one condition: its response lengths."""
    claims = pd.read_csv(study / "claims.csv")
    modules = claims[claims.module != "all modules"]
    f4 = modules[(modules.claim == "F4") & (modules.verdict != "not-applicable")]
    assert len(f4)
    for row in f4.itertuples():
        assert "length" in row.caveats and f"AUROC {row.b} vs {row.a}: length " in row.caveats, row.caveats
        assert "loss " in row.caveats and "IFD " in row.caveats, row.caveats
    f6 = modules[modules.claim == "F6"]
    assert len(f6) and all(f"{r.a}: responses " in r.caveats and "tokens (median" in r.caveats for r in f6.itertuples())
    md = (study / "claims.md").read_text()
    assert "AUROC reasoning/s1-r1 vs " in md and "tokens (median" in md


def test_f4_at_equal_truncation_compares_the_first_256_tokens_of_each_response(study):
    """Every condition again cut to its responses' first 256 tokens (those with fewer skipped, saying so); F4's
    'first256' rows compare the cut s1 traces with the cut conditions only, at one length."""
    samples = pd.read_parquet(study / "run" / "samples.parquet")
    cut = samples[samples.condition.str.endswith("@first256")]
    assert set(cut.condition) == {f"{c}@first256" for c in set(samples.condition) - set(cut.condition)}
    assert (cut[cut.status == "ok"].n_response_tokens == 256).all()
    short = cut[cut.status == "skipped"]
    assert len(short) and short.reason.str.startswith("shorter than the first 256 response tokens").all()
    assert (cut.groupby("condition").status.apply(lambda s: (s == "ok").sum()) >= 2).any()
    claims = pd.read_csv(study / "claims.csv")
    f4 = claims[(claims.claim == "F4") & (claims.task == "first256") & (claims.module != "all modules")]
    assert len(f4) and (f4.b == "reasoning/s1-r1@first256").all() and f4.a.str.endswith("@first256").all()
    assert f4.effect_kind.str.contains("each response's first 256 tokens").all()
    assert (f4.rests_on.str.contains("does not vary")).all()  # one length on both sides: nothing to adjust
    whole = claims[(claims.claim == "F4") & (claims.task == "reasoning") & (claims.module != "all modules")]
    assert len(whole) and not whole.a.str.endswith("@first256").any()


def test_an_unknown_task_is_one_line(folder, capsys, tmp_path):
    assert main(["reproduce", "--study", "followup", *FAST, "--followup-data", str(folder), "--tasks", "reward/wis",
                 "--out", str(tmp_path / "x")]) == 2
    assert "unknown task 'reward/wis'. Did you mean 'reward/wiz'?" in capsys.readouterr().err


def test_f3_is_never_more_certain_than_its_exact_test_on_its_counts():
    """F3's test swaps the two statistics' ranks sample by sample: 3 vs 3 records have 2^6 arrangements, so
    however well the first statistic separates them, p >= 2/64."""
    import numpy as np

    from layergrad.analysis.claims.randomization import paired_rank_test

    labels = np.array([0, 0, 0, 1, 1, 1])
    got = paired_rank_test(labels, np.arange(6.0), np.array([5.0, 0, 4, 1, 3, 2]), np.random.default_rng(0))
    assert got.p >= 2 / 64 and got.design.exact


def test_a_dead_cell_is_a_row_saying_why_and_the_rest_runs(followup_data, paper_data, tmp_path):
    """tiny-random-llama has 1,024 positions: the long prompts of ifd_gpt2/mag/low leave no response token.
    The study runs to the end; the claims that need that condition say why they cannot be checked."""
    out = tmp_path / "fu"
    assert main(["reproduce", "--study", "followup", *FAST, "--followup-data", str(followup_data), "--paper-data",
                 paper_data, "--limit", "2", "--tasks", "ifd_gpt2/mag,instag/mag", "--out", str(out)]) == 0
    claims = pd.read_csv(out / "claims.csv").set_index(["claim", "task", "module"])
    dead = claims.loc[("F1", "ifd_gpt2/mag", "all modules")]
    assert dead.verdict == "not-applicable"
    assert "needs ifd_gpt2/mag/low, which has no computable sample" in dead.caveats
    assert "no response tokens after truncation" in dead.caveats
    samples = pd.read_parquet(out / "run" / "samples.parquet")
    assert (samples[samples.condition == "ifd_gpt2/mag/low"].status == "skipped").all()
    assert claims.loc[("F6", "ifd_gpt2/mag", "all modules")].verdict in ("holds", "fails", "inconclusive")


def test_f1_gives_a_verdict_per_early_middle_and_late_layers():
    """F1 per segment: a drop confined to the early layers holds there and nowhere else."""
    import numpy as np

    from layergrad.analysis import claims
    from layergrad.studies import builtin_claims

    rng = np.random.default_rng(0)
    metrics, prompts, lengths, attributes = {"nuclear_norm": {}}, {}, {}, {}
    for side in ("high", "low"):
        group, ids = f"instag/mag/{side}", [f"{side}{i}" for i in range(30)]
        scale = np.r_[0.6, 0.6, np.ones(4)] if side == "high" else np.ones(6)
        metrics["nuclear_norm"][(group, "q_proj")] = pd.DataFrame(scale * rng.lognormal(0, 0.1, (30, 6)), index=ids)
        prompts[group] = pd.Series(ids, index=ids)
        lengths[group] = pd.Series(rng.integers(100, 300, 30).astype(float), index=ids)
        attributes[group] = {"task": "instag/mag", "quality": side, "family": "quality"}
    table = claims.claims_table([c for c in builtin_claims() if c.id == "F1"], attributes, metrics, prompts, lengths,
                                200, 0).set_index("module")
    assert table.loc["q_proj · early"].verdict == "holds"
    assert table.loc["q_proj · middle"].verdict == "inconclusive" and table.loc["q_proj · late"].verdict == "inconclusive"
