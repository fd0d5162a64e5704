"""The architecture matrix: tiny random models of the families people train, built from their transformers
configs. Every decoder weight matrix a layout names is measured, each statistic within 1e-5 of the SVD of
fp64 autograd's param.grad (per fused block, from a float64 copy of the model); a fused projection's row
blocks are the ones the family's own attention code reads."""

import copy
import math

import pandas as pd
import pytest
import torch
from reference import oracle_singular_values

import layergrad
from layergrad.data.samples import Sample
from layergrad.engine.batching import Item
from layergrad.engine.compute import make_formatter
from layergrad.engine.layouts import Fused, row_blocks
from layergrad.engine.options import ComputeOptions
from layergrad.engine.projections import NOT_ASKED, all_targets, is_matrix, take_rows
from layergrad.engine.statistics import spectrum_stats
from layergrad.models import LoadedModel
from layergrad.tiny import tiny_tokenizer

SMALL = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False)
FAMILIES = {  # model_type -> its config's own names for the small sizes (and dropout off)
    "llama": SMALL, "mistral": SMALL, "qwen2": SMALL, "qwen3": {**SMALL, "head_dim": 16},
    "gemma": {**SMALL, "head_dim": 16}, "gemma2": {**SMALL, "head_dim": 16}, "gemma3_text": {**SMALL, "head_dim": 16},
    "olmo2": SMALL, "stablelm": SMALL, "starcoder2": {**SMALL, "residual_dropout": 0.0, "embedding_dropout": 0.0},
    "phi": {**SMALL, "resid_pdrop": 0.0, "embd_pdrop": 0.0},
    "phi3": {**SMALL, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "pad_token_id": 0},
    "gpt2": dict(n_embd=64, n_layer=2, n_head=4, n_positions=256, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
    "gpt_neox": dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                     max_position_embeddings=256, tie_word_embeddings=False, hidden_dropout=0.0, attention_dropout=0.0),
    "gptj": dict(n_embd=64, n_layer=2, n_head=4, n_positions=256, rotary_dim=8, resid_pdrop=0.0, embd_pdrop=0.0,
                 attn_pdrop=0.0, tie_word_embeddings=False),
    "opt": dict(hidden_size=64, ffn_dim=96, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=256,
                word_embed_proj_dim=64, dropout=0.0, attention_dropout=0.0, tie_word_embeddings=False),
    "falcon": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, hidden_dropout=0.0,
                   attention_dropout=0.0, tie_word_embeddings=False),
    "falcon-new": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2,
                       new_decoder_architecture=True, hidden_dropout=0.0, attention_dropout=0.0,
                       tie_word_embeddings=False),
    "bloom": dict(hidden_size=64, n_layer=2, n_head=4, hidden_dropout=0.0, attention_dropout=0.0,
                  tie_word_embeddings=False),
    "deepseek_v3": dict(SMALL, num_key_value_heads=4, moe_intermediate_size=32, q_lora_rank=32, kv_lora_rank=16,
                        qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, n_routed_experts=4, n_group=2,
                        topk_group=1, num_experts_per_tok=2, first_k_dense_replace=1),  # latent attention; layer 1 MoE
    "mixtral": dict(SMALL, num_local_experts=4, num_experts_per_tok=2),
    "qwen2_moe": dict(SMALL, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                      shared_expert_intermediate_size=48, decoder_sparse_step=1, mlp_only_layers=[]),
    "qwen3_moe": dict(SMALL, head_dim=16, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                      decoder_sparse_step=1, mlp_only_layers=[]),
    "olmoe": dict(SMALL, num_experts=4, num_experts_per_tok=2),
    "gpt_oss": dict(SMALL, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
                    layer_types=["sliding_attention", "full_attention"], sliding_window=8),  # biases, its own gate
}
SAMPLES = [Sample("What is 2+3?", "The answer is 5.", 0),
           Sample("Tell me about the city.", "It was founded in 1820 near the river, and grew quickly. " * 3, 1)]


def tiny_family(family: str, seed: int = 0) -> LoadedModel:
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = tiny_tokenizer(chat=True)
    config = AutoConfig.for_model(family.split("-")[0], vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                                  eos_token_id=tok.eos_token_id, **FAMILIES[family])
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    return LoadedModel(model, tok, f"tiny-{family}", True, {"alias": f"tiny-{family}"})


def float64_copy(m: LoadedModel) -> LoadedModel:
    """A float64 copy; MoE experts on the family's own eager forward (torch's grouped matmul has no float64)."""
    model = copy.deepcopy(m.model).double()
    if hasattr(model, "set_experts_implementation"):
        model.set_experts_implementation("eager")
    return LoadedModel(model, m.tokenizer, m.name, m.is_chat, dict(m.identity))


def decoder_matrices(model) -> set[tuple[str, int | None]]:
    """Every weight matrix inside the decoder layers: each 2-D parameter, each expert's slice of a 3-D one."""
    from layergrad.engine.projections import decoder_layers

    prefix, _ = decoder_layers(model)
    return {(n, e) for n, p in model.named_parameters() if n.startswith(prefix + ".") and is_matrix(n, p)
            for e in (range(p.shape[0]) if p.ndim == 3 else [None])}


def assert_close_to(row, sigma, where):
    ref = spectrum_stats(sigma)
    for column in ("nuclear_norm", "sigma_max", "frobenius_norm"):
        assert math.isclose(row[column], getattr(ref, column), rel_tol=1e-5), (where, column)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_decoder_matrix_is_measured_and_equals_fp64_autograd(family):
    """Tolerance: the model runs in fp32 (rounding ~1e-7 relative per op on 64-wide layers), the reference
    in fp64; 1e-5 relative on the nuclear norm, σ1 and the Frobenius norm holds with a wide margin. Each
    expert against its slice of the 3-D parameter's gradient (an expert the sample routed no token to: its
    row says so and autograd's slice is exactly 0); each MoE layer's summary against the union of the
    experts' fp64 spectra."""
    m = tiny_family(family)
    targets = all_targets(m.model)
    measured = {(t.weight, t.expert) for t in targets}
    assert decoder_matrices(m.model) <= measured, decoder_matrices(m.model) - measured
    assert all(t.named for t in targets), [t.param for t in targets if not t.named]
    frame = layergrad.compute(m, SAMPLES, modules="all")
    assert frame.attrs["coverage"]["measured"] == frame.attrs["coverage"]["matrices"]
    reference = float64_copy(m)
    fmt = make_formatter(m, ComputeOptions())
    for s in SAMPLES:
        want, _ = oracle_singular_values(reference, Item("default", s, fmt.encode(s)))
        rows = frame[frame.sample_id == s.sample_id].set_index("param")
        summaries = rows[rows.route == "experts"]
        assert set(rows.index) - set(summaries.index) == set(want)
        for param, sigma in want.items():
            if rows.loc[param].get("routed_tokens") is not None and rows.loc[param, "routed_tokens"] is not pd.NA \
                    and rows.loc[param, "routed_tokens"] == 0:
                assert float(sigma.abs().max()) == 0.0 and math.isnan(rows.loc[param, "nuclear_norm"]), param
                continue
            assert_close_to(rows.loc[param], sigma, param)
        for param, row in summaries.iterrows():
            union = torch.cat([sigma for p, sigma in want.items() if p.startswith(param + "[")])
            assert_close_to(row, union.sort(descending=True).values, param)


def query_key_value(family: str, module, config, out: torch.Tensor):
    """(q, k, v) of a fused projection's output, split as the family's attention code splits it."""
    heads = config.num_attention_heads
    head = out.shape[-1] // (3 * heads) if family in ("gpt_neox", "bloom") else config.hidden_size // heads
    if family in ("gpt_neox", "bloom"):  # view(..., heads, 3 * head) (NeoX) / view(..., heads, 3, head) (Bloom)
        per_head = out.view(*out.shape[:-1], heads, 3, head)
        return [per_head[..., j, :].flatten(-2) for j in range(3)]
    grouped = out.view(*out.shape[:-1], -1, head)
    if getattr(config, "new_decoder_architecture", False):
        groups = grouped.view(*out.shape[:-1], config.num_kv_heads, -1, head)
        return groups[..., :-2, :].flatten(-3), groups[..., -2, :].flatten(-2), groups[..., -1, :].flatten(-2)
    q, k, v = grouped.split([heads, 1, 1], dim=-2)  # Falcon multi-query
    return q.flatten(-2), k.flatten(-2), v.flatten(-2)


@pytest.mark.parametrize("family", ["gpt_neox", "bloom", "falcon", "falcon-new"])
def test_fused_row_blocks_are_the_ones_the_attention_reads(family):
    m = tiny_family(family)
    fused = next(t for t in all_targets(m.model) if t.rows is not None)
    x = torch.randn(3, fused.d)
    out = fused.module(x) - (fused.module.bias if fused.module.bias is not None else 0)
    split = Fused(("q_proj", "k_proj", "v_proj"), "per_head" if family in ("gpt_neox", "bloom") else "grouped")
    blocks = row_blocks(m.model.config, split, out.shape[-1])
    for rows, want in zip(blocks, query_key_value(family.split("-")[0], fused.module, m.model.config, out)):
        torch.testing.assert_close(take_rows(out, rows), want, rtol=0, atol=0)  # the same entries, moved


def test_each_expert_carries_the_tokens_the_model_routed_to_it():
    """routed_tokens = the tokens of the sample the model's own router sent to the expert (its top-k indices,
    read in an uncaptured forward); the layer's summary row carries their sum (tokens × k)."""
    m = tiny_family("mixtral")
    frame = layergrad.compute(m, SAMPLES, modules="all")
    fmt = make_formatter(m, ComputeOptions())
    for s in SAMPLES:
        chosen = {}
        hooks = [layer.mlp.gate.register_forward_hook(lambda mod, a, out, i=i: chosen.__setitem__(i, out[2]))
                 for i, layer in enumerate(m.model.model.layers)]
        with torch.no_grad():
            m.model(input_ids=torch.tensor([fmt.encode(s).input_ids]))
        for hook in hooks:
            hook.remove()
        rows = frame[(frame.sample_id == s.sample_id) & (frame.module == "expert.down_proj")]
        for layer, indices in chosen.items():
            want = torch.bincount(indices.flatten(), minlength=4).tolist()
            got = rows[rows.layer == layer].sort_values("expert").routed_tokens.tolist()
            assert got == want
        summary = frame[(frame.sample_id == s.sample_id) & (frame.module == "experts.down_proj")]
        assert summary.routed_tokens.tolist() == [fmt.encode(s).n_tokens * 2] * 2


def test_a_batch_measures_each_expert_as_one_sample_at_a_time_does():
    """Padded batches pack each sample's routed tokens apart: the rows equal those of batches of one (the same
    σ² problems, so to fp32 rounding of the batched forward: 1e-5 relative)."""
    m = tiny_family("qwen2_moe")
    one = layergrad.compute(m, SAMPLES, modules="all", batch_size=1)
    both = layergrad.compute(m, SAMPLES, modules="all", batch_size=2, solve_per="batch")
    assert list(one.param) == list(both.param) and list(one.routed_tokens) == list(both.routed_tokens)
    torch.testing.assert_close(torch.tensor(both.nuclear_norm.to_numpy()), torch.tensor(one.nuclear_norm.to_numpy()),
                               rtol=1e-5, atol=1e-9, equal_nan=True)


def test_what_is_not_measured_is_named_with_its_reason():
    """Experts asked to be left out are named, per expert, as not asked (no warning); experts of a class that does
    not follow transformers' experts interface are named as such, with a warning and in the printed line."""
    m = tiny_family("qwen3_moe")
    frame = layergrad.compute(m, SAMPLES[:1], modules="attn")
    summary = frame.attrs["coverage"]
    assert summary["not_measured_count"]["not among the modules asked (--modules)"] == 2 * (2 * 4 + 1)
    assert "model.layers.0.mlp.experts.gate_up_proj[0-3]" in summary["not_measured"][NOT_ASKED[1]]
    m.model.set_experts_implementation("eager")
    del m.model.model.layers[1].mlp.experts.has_gate  # no longer the interface layergrad measures
    with pytest.warns(UserWarning, match="does not follow transformers' experts interface") as caught:
        frame = layergrad.compute(m, SAMPLES[:1])
    summary = frame.attrs["coverage"]
    reason = "MoE experts of Qwen3MoeExperts, which does not follow transformers' experts interface: not measured"
    assert summary["not_measured"][reason] == ["model.layers.1.mlp.experts.gate_up_proj[0-3]",
                                               "model.layers.1.mlp.experts.down_proj[0-3]"]
    assert summary["matrices"] == summary["measured"] + sum(summary["not_measured_count"].values())
    assert f"8 not measured, {reason}" in str(caught[0].message)


def lora_model(m: LoadedModel) -> LoadedModel:
    """``m`` with PEFT LoRA adapters on q_proj and v_proj (both factors random, so neither gradient is 0)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                        init_lora_weights=False)
    return LoadedModel(get_peft_model(copy.deepcopy(m.model), config).eval(), m.tokenizer, m.name, True, {})


def test_a_lora_model_is_measured_as_it_trains(tiny):
    """The base weights under their base kinds (the gradient full fine-tuning would see) and each adapter's
    A and B as targets of their own, all equal to fp64 autograd (tolerance as above)."""
    pytest.importorskip("peft")
    m = lora_model(tiny("tiny-random-llama"))
    targets = all_targets(m.model)
    kinds = {t.kind for t in targets}
    assert {"q_proj", "v_proj", "q_proj.lora_A", "q_proj.lora_B", "v_proj.lora_A", "v_proj.lora_B"} <= kinds
    assert decoder_matrices(m.model) <= {(t.param, t.expert) for t in targets}
    frame = layergrad.compute(m, SAMPLES)
    assert frame.attrs["coverage"]["measured"] == frame.attrs["coverage"]["matrices"] == 4 * (7 + 4)
    reference = float64_copy(m)
    fmt = make_formatter(m, ComputeOptions())
    for s in SAMPLES:
        want, _ = oracle_singular_values(reference, Item("default", s, fmt.encode(s)))
        rows = frame[frame.sample_id == s.sample_id].set_index("param")
        for param, sigma in want.items():
            ref = spectrum_stats(sigma)
            for column in ("nuclear_norm", "sigma_max", "frobenius_norm"):
                assert math.isclose(rows.loc[param, column], getattr(ref, column), rel_tol=1e-5), (param, column)


def test_a_saved_adapter_loads_onto_its_base_model(tiny, tmp_path):
    pytest.importorskip("peft")
    m = lora_model(tiny("tiny-random-llama"))
    m.model.save_pretrained(tmp_path / "adapter")
    loaded = layergrad.load_model("tiny-random-llama", adapter=str(tmp_path / "adapter"), log=lambda *a: None)
    assert {"q_proj.lora_A", "v_proj.lora_B"} <= {t.kind for t in all_targets(loaded.model)}
    a = layergrad.compute(m, SAMPLES[:1])
    b = layergrad.compute(loaded, SAMPLES[:1])
    assert list(a.param) == list(b.param)
    torch.testing.assert_close(torch.tensor(b.nuclear_norm.to_numpy()), torch.tensor(a.nuclear_norm.to_numpy()),
                               rtol=1e-6, atol=0)  # the same weights, the same calls


def test_a_linear_map_whose_rows_are_not_batch_major_is_refused_by_name(tiny):
    """A module that reads (tokens, batch, features): its rows cannot be told apart by sample, so the run stops
    at once with one line naming it (never a spectrum of mixed samples)."""
    from torch import nn

    from layergrad.errors import InputError

    class TimeMajor(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.transpose(0, 1)).transpose(0, 1)

    base = tiny("tiny-random-llama")
    model = copy.deepcopy(base.model)
    model.model.layers[1].mlp.down_proj = TimeMajor(model.model.layers[1].mlp.down_proj)
    m = LoadedModel(model, base.tokenizer, base.name, True, {})
    with pytest.raises(InputError, match=r"model.layers.1.mlp.down_proj.inner.weight: its input has shape"), \
            pytest.warns(UserWarning, match="measured under their own names"):  # no layout names 'inner'
        layergrad.compute(m, SAMPLES, batch_size=2)


def test_a_quantised_linear_is_measured_as_the_linear_map_it_applies(tiny):
    """A leaf module over packed weights that keeps in_features/out_features (as AWQ's, HQQ's) is a target: its
    gradient with respect to the weight it applies equals that of an nn.Linear holding the dequantised weight."""
    from torch import nn
    from torch.nn import functional as F

    class Int8Linear(nn.Module):
        def __init__(self, linear):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            scale = linear.weight.detach().abs().amax(1) / 127
            self.register_buffer("qweight", torch.round(linear.weight.detach() / scale[:, None]).to(torch.int8))
            self.register_buffer("scale", scale)

        def dequantised(self):
            return self.qweight.float() * self.scale[:, None]

        def forward(self, x):
            return F.linear(x, self.dequantised())

    base = tiny("tiny-random-llama")
    quantised, plain = copy.deepcopy(base.model), copy.deepcopy(base.model)
    packed = Int8Linear(quantised.model.layers[0].self_attn.q_proj)
    quantised.model.layers[0].self_attn.q_proj = packed
    plain.model.layers[0].self_attn.q_proj.weight.data = packed.dequantised()
    a = layergrad.compute(LoadedModel(quantised, base.tokenizer, base.name, True, {}), SAMPLES[:1])
    b = layergrad.compute(LoadedModel(plain, base.tokenizer, base.name, True, {}), SAMPLES[:1])
    assert list(a.param) == list(b.param) and a.attrs["coverage"]["kinds"]["q_proj"] == 4
    assert a.attrs["coverage"]["measured"] == a.attrs["coverage"]["matrices"] == 4 * 7
    torch.testing.assert_close(torch.tensor(a.nuclear_norm.to_numpy()), torch.tensor(b.nuclear_norm.to_numpy()),
                               rtol=1e-6, atol=0)  # the same weights applied by the same F.linear


def test_the_tiny_adapter_alias_is_a_saved_lora_adapter(tmp_path, monkeypatch):
    """--adapter tiny-lora: a LoRA adapter for tiny-random-llama, built once into the cache, loaded like any saved
    adapter (its A and B measured); on another model it is refused in one line."""
    pytest.importorskip("peft")
    monkeypatch.setenv("LAYERGRAD_CACHE", str(tmp_path))
    loaded = layergrad.load_model("tiny-random-llama", adapter="tiny-lora", log=lambda *a: None)
    assert (tmp_path / "adapters" / "tiny-lora" / "adapter_model.safetensors").is_file()
    assert {"q_proj.lora_A", "v_proj.lora_B"} <= {t.kind for t in all_targets(loaded.model)}
    from layergrad.errors import ModelError

    with pytest.raises(ModelError, match="built for tiny-random-llama"):
        layergrad.load_model("tiny-random-qwen2", adapter="tiny-lora", log=lambda *a: None)
