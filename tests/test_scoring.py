"""Scoring at a forward pass's cost: the backward only as deep as the lowest measured layer, layer
selection, every statistic to rank by, the length residual, ODA-DataScorer's recipe, streaming windows."""

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch

import layergrad
from layergrad.cli import main
from layergrad.engine.layers import parse_layers
from layergrad.engine.projections import decoder_layers
from layergrad.errors import InputError

WORDS = "the answer follows from adding the two numbers and checking the result once more".split()


def records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"instruction": f"  Question {i}: what is {i} plus {2 * i}? ", "input": "" if i % 3 else f"Note {i}.",
             "output": " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))) + f" It is {3 * i}.",
             "grade": i} for i in range(n)]


@pytest.mark.parametrize("spec,want", [(None, list(range(30))), ("-1", [29]), ("-4:", [26, 27, 28, 29]),
                                       ("0,5,10", [0, 5, 10]), ("2:5", [2, 3, 4]), ("late", list(range(20, 30))),
                                       ("0.5:", list(range(15, 30))), ("early,-1", list(range(10)) + [29])])
def test_layer_specs(spec, want):
    assert parse_layers(spec, 30) == want


@pytest.mark.parametrize("spec", ["30", "-31", "x", "5:2"])
def test_a_bad_layer_spec_is_one_line(spec):
    with pytest.raises(InputError, match="--layers"):
        parse_layers(spec, 30)


@pytest.mark.parametrize("name", ["tiny-random-llama", "tiny-random-gpt2", "tiny-random-phi3"])
def test_the_backward_stops_at_the_lowest_measured_layer_with_the_same_numbers(tiny, name):
    """Last-layer scoring: layers below the last never run backward, and its numbers equal those of a full
    backward to 1e-5 (they are the same calls: equal in fact)."""
    m = tiny(name)
    samples = layergrad.load_samples("builtin:arith/detailed?n=3")
    full = layergrad.compute(m, samples)
    below = []
    handle = decoder_layers(m.model)[1][0].register_full_backward_hook(lambda *a: below.append(1))
    try:
        last = layergrad.compute(m, samples, layers="-1")
    finally:
        handle.remove()
    assert not below and set(last.layer) == {full.layer.max()}
    want = full[full.layer == full.layer.max()].reset_index(drop=True)
    for column in ("nuclear_norm", "sigma_max", "frobenius_norm", "effective_rank"):
        np.testing.assert_allclose(last[column], want[column], rtol=1e-5, atol=0, err_msg=column)


def oda_reference(m, record: dict, join: str, max_length: int = 2048) -> dict:
    """OpenDataArena's scorers with plain transformers calls, line by line as released: text
    instruction[+"\\n"+input] + join + output (NuclearNormScorer: join " "; EffectiveRankScorer: "\\n"), the first
    len(tokenize(instruction + join)) tokens masked, full backward, torch SVD of the last layer's q/k/v/o
    param.grad: the nuclear norm (sum of S) and the effective rank (S > 1e-10, shares > 1e-10, renormalised)."""
    model, tok = m.model, m.tokenizer
    instr = record["instruction"].strip()
    if record.get("input", "").strip():
        instr = instr + "\n" + record["input"].strip()
    text = instr + join + record["output"].strip()
    ids = tok(text, truncation=True, max_length=max_length, return_tensors="pt")["input_ids"]
    labels = ids.clone()
    n_prompt = tok(instr + join, truncation=True, max_length=max_length, return_tensors="pt")["input_ids"].shape[1]
    labels[:, :n_prompt] = -100
    layer = decoder_layers(model)[1][-1].self_attn
    weights = {k: getattr(layer, f"{k}_proj").weight for k in "qkvo"}
    saved = [(p, p.requires_grad) for p in model.parameters()]  # the model is shared with other tests: restored
    for p in model.parameters():
        p.requires_grad_(False)
    for w in weights.values():
        w.requires_grad_(True)
        w.grad = None
    try:
        model(input_ids=ids, labels=labels).loss.backward()
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)
    out = {}
    for k, w in weights.items():
        s = torch.linalg.svd(w.grad, full_matrices=False).S
        out[f"nuclear_norm_{k}_proj"] = float(s.sum())
        s = s[s > 1e-10]
        p = s / s.sum()
        p = p[p > 1e-10]
        p = p / p.sum()
        out[f"effective_rank_{k}_proj"] = float(torch.exp(-(p * torch.log(p)).sum()))
        w.grad = None
    return out


def test_the_oda_recipe_equals_odas_two_scorers_on_ten_records(tmp_path, tiny):
    """The nuclear norm as ODA's NuclearNormScorer computes it (text joined by ' '), the effective rank as its
    EffectiveRankScorer does (joined by '\\n', a second pass): the two scorers see different gradients."""
    rows = records(10)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = layergrad.score(str(tmp_path / "d.jsonl"), tmp_path / "out", model="tiny-random-llama", recipe="oda",
                            quiet=True, log=lambda *a: None)
    m = tiny("tiny-random-llama")
    differ = 0
    for i, row in enumerate(rows):
        nuclear, rank = oda_reference(m, row, " "), oda_reference(m, row, "\n")
        for k in "qkvo":
            assert table.loc[i, f"lg_nuclear_norm_{k}_proj"] == pytest.approx(nuclear[f"nuclear_norm_{k}_proj"],
                                                                              rel=1e-4)
            assert table.loc[i, f"lg_effective_rank_{k}_proj"] == pytest.approx(rank[f"effective_rank_{k}_proj"],
                                                                                rel=1e-4), (i, k)
            differ += abs(rank[f"effective_rank_{k}_proj"] / nuclear[f"effective_rank_{k}_proj"] - 1) > 1e-3
    assert differ  # the second pass matters: the " " text's effective ranks are not ODA's


def test_every_statistic_ranks_and_the_length_residual_removes_length(tmp_path, capsys):
    rows = records(24, seed=3)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", str(tmp_path / "d.jsonl"), "--model", "tiny-random-llama", "-q", "--out", str(tmp_path / "o"),
                 "--layers", "-2:", "--by", "sigma1_ratio", "--top", "5", "--residualize", "length"]) == 0
    scored = pd.read_parquet(tmp_path / "o" / "scored.parquet")
    for name in layergrad.engine.statistics.names():
        assert f"lg_{name}" in scored.columns
    resid = scored.lg_sigma1_ratio_given_length
    logs = np.log(scored.lg_response_tokens.astype(float))
    assert abs(np.corrcoef(resid, logs)[0, 1]) < 1e-6  # nothing linear in log length is left
    top = [json.loads(line) for line in (tmp_path / "o" / "top-5-sigma1_ratio_given_length.jsonl").read_text().splitlines()]
    best = set(scored.nlargest(5, "lg_sigma1_ratio_given_length").grade)
    assert {r["grade"] for r in top} == best and [r["grade"] for r in top] == sorted(best)
    assert main(["score", str(tmp_path / "d.jsonl"), "--model", "tiny-random-llama", "-q", "--out", str(tmp_path / "p"),
                 "--by", "stable_rnak"]) == 2
    assert "Did you mean 'stable_rank'" in capsys.readouterr().err


def test_windows_stream_the_input_and_keep_its_order(tmp_path):
    """A Parquet input read in windows of 4: every record back in input order, each window one chunk."""
    rows = records(10, seed=5)
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    table = layergrad.score(str(tmp_path / "d.parquet"), tmp_path / "o", model="tiny-random-llama", window=4,
                            layers="-1", quiet=True, log=lambda *a: None)
    assert list(table.grade) == list(range(10)) and (table.lg_status == "ok").all()
    assert len(list((tmp_path / "o" / "run" / "chunks").glob("*.samples.parquet"))) == 3


@pytest.mark.parametrize("suffix", [".parquet", ".json"])
def test_limit_scores_a_seeded_random_subsample_in_input_order_and_head_the_first(tmp_path, suffix):
    """--limit N: N records drawn with the seed (the same draw for the same input size), kept in input order; the
    windows, the scores, the selections read the same records. A .json array gives no count: it is read once."""
    rows = records(20, seed=7)
    path = tmp_path / f"d{suffix}"
    pd.DataFrame(rows).to_parquet(path) if suffix == ".parquet" else path.write_text(json.dumps(rows))
    want = sorted(random.Random(0).sample(range(20), 6))
    args = ["--model", "tiny-random-llama", "-q", "--layers", "-1", "--top", "2"]
    assert main(["score", str(path), *args, "--limit", "6", "--out", str(tmp_path / "a")]) == 0
    scored = pd.read_parquet(tmp_path / "a" / "scored.parquet")
    assert list(scored.grade) == want and (scored.lg_status == "ok").all()
    (selected,) = (tmp_path / "a").glob("top-2-*")
    top = [r["grade"] for r in json.loads(selected.read_text())] if selected.suffix == ".json" else \
        list(pd.read_parquet(selected).grade)
    assert len(top) == 2 and set(top) <= set(want) and top == sorted(top)
    assert main(["score", str(path), *args, "--head", "6", "--out", str(tmp_path / "b")]) == 0
    assert list(pd.read_parquet(tmp_path / "b" / "scored.parquet").grade) == list(range(6))


def test_score_takes_a_model_already_loaded(tmp_path, tiny):
    """A notebook's model (layergrad.load_model) passed to score: reused, not loaded again, the same numbers as the
    model named by its alias."""
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records(4)))
    m = tiny("tiny-random-llama")
    by_object = layergrad.score(str(path), tmp_path / "a", model=m, layers="-1", log=lambda *a: None)
    by_name = layergrad.score(str(path), tmp_path / "b", model="tiny-random-llama", layers="-1", log=lambda *a: None)
    columns = [c for c in by_name.columns if c.startswith("lg_") and by_name[c].dtype.kind == "f"]
    np.testing.assert_allclose(by_object[columns].to_numpy(), by_name[columns].to_numpy(), rtol=1e-5, atol=1e-7)
