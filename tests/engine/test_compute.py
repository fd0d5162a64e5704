"""The engine against the autograd oracle, batch invariance, skips and non-finite flags."""

import math

import numpy as np
import pytest
import torch
from reference import autograd_gradients, oracle_singular_values

import layergrad
from layergrad.data.samples import Sample
from layergrad.engine.batching import Item
from layergrad.engine.compute import make_formatter
from layergrad.engine.options import ComputeOptions
from layergrad.engine.statistics import spectrum_stats

SAMPLES = [
    Sample("What is 2+3?", "The answer is 5.", 0),
    Sample("Tell me about the city.", "It was founded in 1820 near the river, and grew quickly. " * 6, 1),
    Sample("x", "y", 2),
    Sample("Knitting for a long time can lead to what condition?", " sore hands", 3),
    Sample("A farmer has 12 apples.\n", "\nShe has 12 + 7 = 19 apples. The final answer is 19.", 4),
]


def assert_matches_oracle(m, frame, samples, modules="all", tol=1e-4):
    fmt = make_formatter(m, ComputeOptions())
    for s in samples:
        ref, loss = oracle_singular_values(m, Item("default", s, fmt.encode(s)), modules)
        rows = frame[frame.sample_id == s.sample_id].set_index("param")
        assert set(rows.index) == set(ref)
        for param, sigma in ref.items():
            want = spectrum_stats(sigma)
            for col in ("nuclear_norm", "sigma_max", "frobenius_norm"):
                assert math.isclose(rows.loc[param, col], getattr(want, col), rel_tol=tol), (param, col)
        samples_table = frame.attrs["samples"].set_index("sample_id")
        assert math.isclose(samples_table.loc[s.sample_id, "loss"], loss, rel_tol=1e-5)


@pytest.mark.parametrize("name", ["tiny-random-llama", "tiny-random-qwen2", "tiny-random-phi3", "tiny-random-gpt2"])
@pytest.mark.parametrize("route", ["auto", "core", "dense", "reference"])
def test_exact_against_autograd_fp64(tiny, name, route):
    m = tiny(name)
    frame = layergrad.compute(m, SAMPLES, batch_size=2, route=route)
    assert_matches_oracle(m, frame, SAMPLES)


def test_all_seven_kinds_are_found_and_fused_blocks_are_split(tiny):
    for name in ("tiny-random-llama", "tiny-random-phi3", "tiny-random-gpt2"):
        frame = layergrad.compute(tiny(name), SAMPLES[:1])
        kinds = set(frame.module)
        assert {"q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"} <= kinds
    phi = layergrad.compute(tiny("tiny-random-phi3"), SAMPLES[:1])
    assert "model.layers.0.self_attn.qkv_proj.weight[k_proj]" in set(phi.param)
    k_rows = phi[phi.module == "k_proj"]
    assert (k_rows.rank_bound <= 32).all()  # 2 kv heads x 16 = 32 rows


def test_batch_equals_one_at_a_time(tiny):
    m = tiny("tiny-random-llama")
    samples = [Sample(f"Question {i}: " + "word " * (3 * i), "answer " * (1 + 5 * i), i) for i in range(8)]
    batched = layergrad.compute(m, samples, batch_size=8)
    single = layergrad.compute(m, samples, batch_size=1)
    by_tokens = layergrad.compute(m, samples, batch_tokens=200)
    cols = ["nuclear_norm", "sigma_max", "frobenius_norm", "effective_rank"]
    for other in (single, by_tokens):
        assert list(other.param) == list(batched.param)
        assert torch.allclose(torch.tensor(other[cols].values), torch.tensor(batched[cols].values), rtol=1e-5)


def test_module_selection(tiny):
    m = tiny("tiny-random-llama")
    assert set(layergrad.compute(m, SAMPLES[:1], modules="attn").module) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert set(layergrad.compute(m, SAMPLES[:1], modules="down_proj").module) == {"down_proj"}
    frame = layergrad.compute(m, SAMPLES[:1], modules=r"re:layers\.1\.mlp")
    assert set(frame.layer) == {1}
    with pytest.raises(layergrad.LayergradError, match="Did you mean 'q_proj'"):
        layergrad.compute(m, SAMPLES[:1], modules="q_prj")


def test_prompt_filling_max_length_is_a_skip_not_a_nan(tiny):
    m = tiny("tiny-random-llama")
    long_prompt = Sample("word " * 300, "short answer", 9)
    frame = layergrad.compute(m, [long_prompt, SAMPLES[0]], max_length=64)
    table = frame.attrs["samples"].set_index("source_index")
    assert table.loc[9, "status"] == "skipped"
    assert table.loc[9, "reason"] == "no response tokens after truncation"
    assert long_prompt.sample_id not in set(frame.sample_id)
    assert frame.nuclear_norm.notna().all()


def test_nonfinite_gradient_is_flagged_not_a_crash(tiny):
    m = tiny("tiny-random-llama")
    layer = m.model.model.layers[1].mlp.up_proj
    saved = layer.weight.data.clone()
    layer.weight.data[0, 0] = float("inf")
    try:
        frame = layergrad.compute(m, SAMPLES[:2], batch_size=2)
    finally:
        layer.weight.data.copy_(saved)
    assert set(frame.attrs["samples"].status) == {"nonfinite"}
    assert (~frame.finite).any()


def test_weights_get_no_gradient_and_hooks_are_removed(tiny):
    m = tiny("tiny-random-llama")
    layergrad.compute(m, SAMPLES[:2])
    assert all(p.grad is None for p in m.model.parameters())
    assert all(p.requires_grad for p in m.model.parameters())
    assert not any(mod._forward_hooks for mod in m.model.modules())


@pytest.mark.parametrize("name", ["tiny-random-llama", "tiny-random-phi3"])
def test_adjacent_layer_cosine_matches_autograd(tiny, name):
    m = tiny(name)
    samples = layergrad.load_samples("builtin:arith/simplified?n=3")
    frame = layergrad.compute(m, samples, cosine=True, batch_size=3)
    s = samples[1]
    item = Item("default", s, make_formatter(m, ComputeOptions()).encode(s))
    grads = autograd_gradients(m, item)
    rows = frame[frame.sample_id == s.sample_id].set_index(["module", "layer"])
    n_layers = frame.layer.max() + 1
    for (kind, layer), g in grads.items():
        want = float((g * grads[(kind, layer + 1)]).sum() / (g.norm() * grads[(kind, layer + 1)].norm())) \
            if layer + 1 < n_layers else float("nan")
        got = rows.loc[(kind, layer), "cosine_next"]
        assert (math.isnan(want) and math.isnan(got)) or abs(got - want) < 1e-5, (kind, layer, got, want)


def test_the_lm_head_keeps_enough_positions_for_its_rows_to_equal_the_full_product():
    """logits_to_keep never below MIN_KEPT_LOGITS: a BLAS may take another kernel for 1-3 rows (MKL
    does, with 20x the rounding over a large vocabulary), while from a few rows on each row of the
    product equals the full product's to float noise. At a real head's shape, to a stated tolerance (row
    equality is not guaranteed by construction across BLAS kernels; the end-to-end check of 1-3-token
    answers against autograd is in test_real_model.py)."""
    from layergrad.engine.losses import MIN_KEPT_LOGITS

    g = torch.Generator().manual_seed(0)
    head = torch.randn(49152, 576, generator=g) * 0.05  # SmolLM2's vocabulary x width
    grad_logits = torch.randn(100, 49152, generator=g).softmax(-1)
    full = grad_logits @ head
    kept = grad_logits[-MIN_KEPT_LOGITS:] @ head
    torch.testing.assert_close(kept, full[-MIN_KEPT_LOGITS:], rtol=1e-5, atol=1e-5 * full.abs().max().item())


def test_short_answers_keep_at_least_the_minimum_of_logits(tiny):
    from layergrad.engine.losses import MIN_KEPT_LOGITS, logits_to_keep

    m = tiny("tiny-random-llama")
    scored = torch.zeros(1, 40, dtype=torch.bool)
    scored[0, 38] = True  # one response token: its predictor is position 38 of 41
    assert logits_to_keep(m.model, scored) == MIN_KEPT_LOGITS
    short = torch.tensor([[False, False, True]])  # 4 positions in all: all of them, no more
    assert logits_to_keep(m.model, short) == 4


def test_same_layer_cosines_match_autograd(tiny):
    """cosine_pair: cos(G_q, G_o) and cos(G_k, G_v) of the row-major flattened gradients, from the factors."""
    m = tiny("tiny-random-llama")  # q and o are 64x64; k and v 32x64
    samples = layergrad.load_samples("builtin:arith/simplified?n=2")
    frame = layergrad.compute(m, samples, cosine=True)
    s = samples[1]
    grads = autograd_gradients(m, Item("default", s, make_formatter(m, ComputeOptions()).encode(s)))
    rows = frame[frame.sample_id == s.sample_id].set_index(["module", "layer"])
    for a, b in (("q_proj", "o_proj"), ("k_proj", "v_proj")):
        for layer in range(4):
            ga, gb = grads[(a, layer)].flatten(), grads[(b, layer)].flatten()
            want = float(ga @ gb / (ga.norm() * gb.norm()))
            assert abs(rows.loc[(a, layer), "cosine_pair"] - want) < 1e-5, (a, layer)
    assert rows.loc[[("o_proj", 0), ("up_proj", 0)], "cosine_pair"].isna().all()


def test_shuffled_cosines_pair_each_sample_with_the_next_of_its_batch(tiny):
    """cosine_pair_shuffled / cosine_next_shuffled: the same cosines with the second gradient from the next sample of
    the batch (cyclic) — unrelated gradients, F6's null reference — against fp64 autograd: each sample's values are
    those of one other sample, the three pairings a cycle; NaN in a batch of one."""
    m = tiny("tiny-random-llama")
    samples = layergrad.load_samples("builtin:arith/simplified?n=3")
    frame = layergrad.compute(m, samples, cosine=True, batch_size=3)
    items = {s.sample_id: Item("default", s, make_formatter(m, ComputeOptions()).encode(s)) for s in samples}
    grads = {sid: autograd_gradients(m, item) for sid, item in items.items()}
    cosine = lambda ga, gb: float(ga.flatten() @ gb.flatten() / (ga.norm() * gb.norm()))
    partner = {}
    for sid in grads:
        rows = frame[frame.sample_id == sid].set_index(["module", "layer"])
        got = [rows.loc[("q_proj", 0), "cosine_pair_shuffled"], rows.loc[("k_proj", 1), "cosine_pair_shuffled"],
               rows.loc[("v_proj", 0), "cosine_next_shuffled"]]
        matches = [other for other in grads if other != sid and np.allclose(got, [
            cosine(grads[sid][("q_proj", 0)], grads[other][("o_proj", 0)]),
            cosine(grads[sid][("k_proj", 1)], grads[other][("v_proj", 1)]),
            cosine(grads[sid][("v_proj", 0)], grads[other][("v_proj", 1)])], rtol=0, atol=1e-5)]
        assert len(matches) == 1, sid
        partner[sid] = matches[0]
    assert sorted(partner.values()) == sorted(grads) and all(partner[partner[partner[s]]] == s for s in grads)
    alone = layergrad.compute(m, samples[:1], cosine=True)
    assert alone.cosine_pair_shuffled.isna().all() and alone.cosine_next_shuffled.isna().all()


def test_first_tokens_trains_on_exactly_those_tokens(tiny):
    """A '#first=N' sample is its whole encoding cut after N response tokens (loss against the model's own on those
    ids, spectra against the fp64 oracle); a response with fewer tokens is a skip that says so."""
    from dataclasses import replace

    m = tiny("tiny-random-llama")
    whole, short = SAMPLES[1], SAMPLES[0]
    cut = [replace(whole, first_tokens=6), replace(short, first_tokens=50)]
    frame = layergrad.compute(m, cut)
    rows = frame.attrs["samples"].set_index("source_index")
    enc = make_formatter(m, ComputeOptions()).encode(whole)  # the whole sample's tokens
    ids = list(enc.input_ids[:enc.n_prompt + 6])
    with torch.no_grad():
        want = m.model(input_ids=torch.tensor([ids]), labels=torch.tensor([[-100] * enc.n_prompt + ids[enc.n_prompt:]]))
    assert rows.loc[1, "n_response_tokens"] == 6 and enc.n_response > 6
    assert rows.loc[1, "loss"] == pytest.approx(float(want.loss), rel=1e-5)
    assert_matches_oracle(m, frame, cut[:1])
    assert rows.loc[0, "status"] == "skipped"
    assert rows.loc[0, "reason"].startswith("shorter than the first 50 response tokens its condition trains on")
