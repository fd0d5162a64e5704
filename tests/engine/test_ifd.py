"""IFD: the default recipe against its definition, the paper recipe against an independent
re-implementation of the follow-up's code (plain transformers calls), skips and flags."""

import json
import math

import pytest
import torch

import layergrad
from layergrad.data.samples import Sample

SAMPLES = [Sample("What is 2+3?", "The answer is 5.", 0), Sample("Tell me about the city.", "It grew. " * 12, 1),
           Sample("Say yes.", "yes", 2)]


def hf_loss(model, ids, labels) -> float:
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss)


def followup_ifd(model, tok, instruction: str, output: str, max_length: int) -> float:
    """The follow-up's metrics/cal_ifd.py + process_ifd.py (Superfiltering), written out again."""
    prompt = f"{instruction}\n"
    whole = prompt + output
    ids = tok.encode(whole, truncation=True, max_length=max_length)
    start = len(tok.encode(whole[:whole.rfind(output)]))
    labels = [-100] * start + ids[start:]
    conditioned = hf_loss(model, ids, labels[:len(ids)])
    prompt_len = len(tok.encode(prompt, truncation=True, max_length=max_length))
    alone = tok.encode(output, truncation=True, max_length=max_length - prompt_len + 1)
    direct = hf_loss(model, alone, alone)
    return math.exp(conditioned) / math.exp(direct)


def test_default_ifd_is_the_loss_with_and_without_the_prompt(tiny):
    """Conditioned = the gradient pass's loss; direct = the same response tokens after only the
    template's assistant header (the tiny chat model has no BOS), built here from the tokenizer."""
    m = tiny("tiny-random-llama")
    frame = layergrad.compute(m, SAMPLES, ifd=True)
    table = frame.attrs["samples"].set_index("source_index")
    tok = m.tokenizer
    header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    for s in SAMPLES:
        row = table.loc[s.source_index]
        assert row.loss_conditioned == row.loss
        response = tok(s.response + "<|im_end|>", add_special_tokens=False)["input_ids"]
        ids = header + response
        want = hf_loss(m.model, ids, [-100] * len(header) + response)
        assert row.loss_direct == pytest.approx(want, rel=1e-5)
        assert row.ifd == pytest.approx(math.exp(row.loss - row.loss_direct), rel=1e-9)
        assert (row.ifd > 1) == ("IFD > 1" in row.ifd_note)


def test_paper_ifd_equals_the_followups_recipe_on_a_tiny_model(tiny):
    m = tiny("tiny-random-qwen2")
    frame = layergrad.compute(m, SAMPLES, paper=True, ifd=True, modules="q_proj")
    table = frame.attrs["samples"].set_index("source_index")
    for s in SAMPLES:
        want = followup_ifd(m.model, m.tokenizer, s.prompt, s.response, 1024)
        assert table.loc[s.source_index, "ifd"] == pytest.approx(want, rel=1e-4)


def test_an_ifd_that_cannot_be_computed_keeps_the_spectra(tiny):
    """A base model (no BOS, no template) and a one-token response: alone, no token can be scored."""
    m = tiny("tiny-random-gpt2")
    frame = layergrad.compute(m, [Sample("What is 2+3?", "5", 0), SAMPLES[1]], ifd=True, append_eos=False)
    rows = frame.attrs["samples"].set_index("source_index")
    assert (rows.status == "ok").all() and frame.nuclear_norm.notna().all()
    assert math.isnan(rows.loc[0, "ifd"]) and "no token to score" in rows.loc[0, "ifd_note"]
    assert math.isfinite(rows.loc[1, "ifd"])


@pytest.mark.integration
def test_paper_ifd_on_followup_records_equals_an_independent_implementation(smollm2, followup_data, tmp_path):
    """The 20 shortest records of a follow-up file (the recipe is the same at any length; the short ones
    keep the test quick)."""
    records = json.loads((followup_data / "ifd_gpt2" / "wiz_10k_lowest_200.json").read_text())
    records = sorted(records, key=lambda r: len(r["instruction"]) + len(r["output"]))[:20]
    path = tmp_path / "shortest.json"
    path.write_text(json.dumps(records))
    samples = layergrad.load_samples(str(path))
    frame = layergrad.compute(smollm2, samples, paper=True, ifd=True, modules="q_proj")
    table = frame.attrs["samples"].set_index("source_index")
    for i, r in enumerate(records):
        want = followup_ifd(smollm2.model, smollm2.tokenizer, r["instruction"], r["output"], 1024)
        assert table.loc[i, "ifd"] == pytest.approx(want, rel=1e-4), i


def test_paper_ifd_of_the_first_tokens_scores_those_tokens_both_ways(tiny):
    """'#first=N' in the paper recipe: conditioned on the instruction and alone, the same first N response tokens."""
    from dataclasses import replace

    m, n = tiny("tiny-random-qwen2"), 5
    tok = m.tokenizer
    s = replace(SAMPLES[1], first_tokens=n)
    frame = layergrad.compute(m, [s], paper=True, ifd=True, modules="q_proj")
    row = frame.attrs["samples"].iloc[0]
    whole = f"{s.prompt}\n{s.response}"
    ids = tok.encode(whole)
    start = len(tok.encode(whole[:whole.rfind(s.response)]))
    conditioned = hf_loss(m.model, ids[:start + n], [-100] * start + ids[start:start + n])
    alone = tok.encode(s.response)[:n]
    assert row.ifd == pytest.approx(math.exp(conditioned) / math.exp(hf_loss(m.model, alone, alone)), rel=1e-4)
