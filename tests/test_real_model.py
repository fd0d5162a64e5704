"""Integration tests on the real small model SmolLM2-135M-Instruct (fetched on first use)."""

import math

import pytest
import torch
from reference import oracle_singular_values

import layergrad
from layergrad.engine.batching import Item
from layergrad.engine.compute import make_formatter
from layergrad.engine.options import ComputeOptions
from layergrad.engine.original import original_record
from layergrad.engine.statistics import spectrum_stats

pytestmark = pytest.mark.integration
STYLES = {"none": "gsm8k/none", "simplified": "gsm8k/simplified", "detailed": "gsm8k/detailed"}
CHECKED_LAYERS = (0, 1, 15, 28, 29)  # paper mode with all modules: first, middle, last layers


EXACT_LIMIT = {"none": 2, "simplified": 1, "detailed": 1}  # benchmarks/exactness.py checks more


@pytest.mark.parametrize("style", STYLES)
def test_exact_all_seven_kinds_against_fp64(smollm2, paper_data, style, monkeypatch):
    """Every (layer, module) within 1e-4; with the jobs on worker threads (the default on a multi-core
    CPU, inline in a one-thread test worker), while the paper-mode tests below run them inline."""
    from layergrad.engine import plan, threads

    monkeypatch.setattr(threads, "workers", lambda: 2)
    monkeypatch.setattr(plan, "executor", lambda budget: "workers")
    samples = layergrad.load_samples(f"paper:{STYLES[style]}", limit=EXACT_LIMIT[style], paper_data=paper_data)
    frame = layergrad.compute(smollm2, samples)
    assert frame.module.nunique() == 7 and frame.layer.nunique() == 30
    fmt = make_formatter(smollm2, ComputeOptions())
    worst = 0.0
    for s in samples:
        ref, _ = oracle_singular_values(smollm2, Item("default", s, fmt.encode(s)))
        rows = frame[frame.sample_id == s.sample_id].set_index("param")
        assert len(ref) == 210  # every (layer, module)
        for param, sigma in ref.items():
            want = spectrum_stats(sigma)
            for col in ("nuclear_norm", "sigma_max", "frobenius_norm"):
                worst = max(worst, abs(rows.loc[param, col] - getattr(want, col)) / getattr(want, col))
    assert worst < 1e-4, worst


def test_paper_mode_with_all_modules_is_exact(smollm2, paper_data):
    """`--paper --modules all`: all 7 kinds (210 matrices per sample) under paper formatting, exact."""
    samples = layergrad.load_samples("paper:gsm8k/simplified", limit=2, paper_data=paper_data)
    frame = layergrad.compute(smollm2, samples, paper=True, modules="all")
    assert frame.groupby("sample_id").size().tolist() == [210, 210]
    fmt = make_formatter(smollm2, ComputeOptions(paper=True).resolved())
    worst = 0.0
    for s in samples:
        ref, _ = oracle_singular_values(smollm2, Item("default", s, fmt.encode(s)), layers=CHECKED_LAYERS)
        rows = frame[frame.sample_id == s.sample_id].set_index("param")
        assert len(ref) == 7 * len(CHECKED_LAYERS)
        for param, sigma in ref.items():
            want = spectrum_stats(sigma).nuclear_norm
            worst = max(worst, abs(rows.loc[param, "nuclear_norm"] - want) / want)
    assert worst < 1e-4, worst


ORIGINAL_LIMIT = {"none": 6, "simplified": 3, "detailed": 2}  # the longer the response, the fewer


@pytest.mark.parametrize("style", STYLES)
def test_paper_mode_reproduces_the_original_algorithm(smollm2, paper_data, style):
    """Loss and S_sum within 1e-4 relative on every sample and all 120 matrices of it (11 GSM8K samples,
    one style per test so that test workers share them; benchmarks/cpu_vs_original.py runs more)."""
    samples = layergrad.load_samples(f"paper:{STYLES[style]}", limit=ORIGINAL_LIMIT[style], paper_data=paper_data)
    frame = layergrad.compute(smollm2, {style: samples}, paper=True)
    table = frame.attrs["samples"].set_index(["condition", "sample_id"])
    agree = 0
    for s in samples:
        record = original_record(smollm2.model, smollm2.tokenizer, s.prompt, s.response,
                                 chat=True, model_name=smollm2.name, vectors=False)
        rows = frame[(frame.condition == style) & (frame.sample_id == s.sample_id)].set_index("param")
        ok = math.isclose(table.loc[(style, s.sample_id), "loss"], record["loss"], rel_tol=1e-4)
        ok &= len(rows) == 120 and all(
            math.isclose(rows.loc[p, "nuclear_norm"], record[p]["S_sum"], rel_tol=1e-4) for p in rows.index)
        agree += ok
    assert agree == len(samples) == ORIGINAL_LIMIT[style], agree


def test_instruct_model_answers(smollm2):
    tok = smollm2.tokenizer
    text = tok.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    out = smollm2.model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "5" in tok.decode(out[0, ids.shape[1]:])


@pytest.fixture(scope="module")
def gemma3():
    return layergrad.load_model("gemma3-270m", log=lambda *a: None)


def test_base_model_knows_paris(gemma3):
    """Gemma-3-270M base (Q4_K_M, dequantized): 'Paris' is among the three most likely next
    tokens after 'The capital of France is' (greedy picks ' the' here: ' the capital of the
    country of France...'), and greedy decoding names it for two direct prompts."""
    tok, model = gemma3.tokenizer, gemma3.model
    assert not gemma3.is_chat
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        top = model(**ids).logits[0, -1].topk(3).indices.tolist()
    assert " Paris" in [tok.decode([i]) for i in top]
    for prompt in ("The Eiffel Tower is in the city of", "Question: What is the capital of France?\nAnswer:"):
        ids = tok(prompt, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=6, do_sample=False)
        assert "Paris" in tok.decode(out[0, ids.input_ids.shape[1]:])


def test_base_model_spectra_are_exact(gemma3):
    samples = layergrad.load_samples("builtin:arith/simplified?n=1")
    frame = layergrad.compute(gemma3, samples)
    assert len(frame) == 18 * 7 and frame.finite.all()
    s = samples[0]
    ref, _ = oracle_singular_values(gemma3, Item("default", s, make_formatter(gemma3, ComputeOptions()).encode(s)))
    rows = frame.set_index("param")
    worst = max(abs(rows.loc[param, "nuclear_norm"] - spectrum_stats(sigma).nuclear_norm) / spectrum_stats(sigma).nuclear_norm
                for param, sigma in ref.items())
    assert worst < 1e-4, worst


def test_short_answers_are_exact_against_autograd(smollm2, paper_data):
    """1-3-token responses (the paper's None CoT, paper formatting): every module's nuclear norm, σ1 and
    Frobenius norm within 1e-5 of the SVD of autograd's param.grad (same fp32 model)."""
    samples = layergrad.load_samples("paper:gsm8k/none", limit=4, paper_data=paper_data)
    frame = layergrad.compute(smollm2, samples, paper=True, modules="all")
    fmt = make_formatter(smollm2, ComputeOptions(paper=True).resolved())
    worst = 0.0
    for s in samples:
        item = Item("default", s, fmt.encode(s))
        assert 1 <= item.encoded.n_response <= 3
        ref, _ = oracle_singular_values(smollm2, item, layers=CHECKED_LAYERS)
        rows = frame[frame.sample_id == s.sample_id].set_index("param")
        for param, sigma in ref.items():
            want = spectrum_stats(sigma)
            for col in ("nuclear_norm", "sigma_max", "frobenius_norm"):
                worst = max(worst, abs(rows.loc[param, col] - want[col]) / want[col])
    assert worst < 1e-5, worst
