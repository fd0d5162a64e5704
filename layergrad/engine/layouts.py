"""Which kind each linear module of a decoder layer is, per model family: a registry of layouts.

A layout maps a module's path inside a decoder layer to its kind — q_proj k_proj v_proj o_proj gate_proj
up_proj down_proj, or a kind of its own (DeepSeek's q_a_proj, ...) — or, for a fused projection, to the
kinds of its row blocks and how the architecture lays them out (``Fused``). The common layout (Llama and
the families that copied its names) applies to every model; a family's layout, registered under its
``config.model_type``, adds to it and wins where both name a path. A linear module that no layout names
is still measured, under its own name, and the run's coverage says so (projections.py).

Add a family with one call::

    register_layout("my_family", {"attn.wqkv": Fused(("q_proj", "k_proj", "v_proj"), "per_head"),
                                  "attn.wo": "o_proj", "ffn.w1": "up_proj", "ffn.w2": "down_proj"})
"""

from __future__ import annotations

from dataclasses import dataclass

from layergrad.errors import InputError
from layergrad.registry import Registry

QKV = ("q_proj", "k_proj", "v_proj")
SPLITS = ("contiguous", "per_head", "grouped")


@dataclass(frozen=True)
class Fused:
    """A fused projection: the kinds of its row blocks and their layout in the weight's rows —
    ``contiguous`` (all q rows, then k, then v: Phi-3, GPT-2; sized by the head counts), ``per_head``
    (q, k, v of head 0, then of head 1, ...: GPT-NeoX, Bloom, Falcon without multi-query) or ``grouped``
    (per key/value group its query heads, then its key, then its value: Falcon; multi-query is one group)."""

    kinds: tuple[str, ...]
    split: str = "contiguous"

    def __post_init__(self):
        if self.split not in SPLITS:
            raise InputError(f"unknown split '{self.split}'; use {', '.join(SPLITS)}")


LAYOUTS = Registry("model layout")

COMMON = {
    "self_attn.q_proj": "q_proj", "self_attn.k_proj": "k_proj", "self_attn.v_proj": "v_proj",
    "self_attn.o_proj": "o_proj", "mlp.gate_proj": "gate_proj", "mlp.up_proj": "up_proj",
    "mlp.down_proj": "down_proj",
    "self_attn.qkv_proj": Fused(QKV), "mlp.gate_up_proj": Fused(("gate_proj", "up_proj")),  # Phi-3
    "attn.c_attn": Fused(QKV), "attn.c_proj": "o_proj", "mlp.c_fc": "up_proj", "mlp.c_proj": "down_proj",  # GPT-2
    "mlp.gate": "router",  # MoE blocks: a router that is an nn.Linear; the shared experts (Qwen2-MoE, DeepSeek)
    **{f"mlp.{shared}.{kind}": f"shared_expert.{kind}" for shared in ("shared_expert", "shared_experts")
       for kind in ("gate_proj", "up_proj", "down_proj")},
    "mlp.shared_expert_gate": "shared_expert_gate",
}


def register_layout(model_type: str, entries: dict, *, replace: bool = False) -> dict:
    """Register a family's layout: {module path inside a decoder layer: kind or Fused}."""
    for path, kind in entries.items():
        if not isinstance(kind, (str, Fused)):
            raise InputError(f"layout of {model_type}: {path} maps to a kind (a string) or a Fused, got {kind!r}")
    return LAYOUTS.register(model_type, dict(entries), replace=replace)


register_layout("opt", {"self_attn.out_proj": "o_proj", "fc1": "up_proj", "fc2": "down_proj"})
register_layout("gptj", {"attn.q_proj": "q_proj", "attn.k_proj": "k_proj", "attn.v_proj": "v_proj",
                         "attn.out_proj": "o_proj", "mlp.fc_in": "up_proj", "mlp.fc_out": "down_proj"})
register_layout("gpt_neox", {"attention.query_key_value": Fused(QKV, "per_head"), "attention.dense": "o_proj",
                             "mlp.dense_h_to_4h": "up_proj", "mlp.dense_4h_to_h": "down_proj"})
register_layout("bloom", {"self_attention.query_key_value": Fused(QKV, "per_head"), "self_attention.dense": "o_proj",
                          "mlp.dense_h_to_4h": "up_proj", "mlp.dense_4h_to_h": "down_proj"})
register_layout("falcon", {"self_attention.query_key_value": Fused(QKV, "grouped"), "self_attention.dense": "o_proj",
                           "mlp.dense_h_to_4h": "up_proj", "mlp.dense_4h_to_h": "down_proj"})
register_layout("phi", {"self_attn.dense": "o_proj", "mlp.fc1": "up_proj", "mlp.fc2": "down_proj"})
register_layout("starcoder2", {"mlp.c_fc": "up_proj", "mlp.c_proj": "down_proj"})
MLA = {"self_attn.q_a_proj": "q_a_proj", "self_attn.q_b_proj": "q_b_proj",  # DeepSeek's latent attention: kinds of
       "self_attn.kv_a_proj_with_mqa": "kv_a_proj_with_mqa", "self_attn.kv_b_proj": "kv_b_proj"}  # their own
register_layout("deepseek_v2", MLA)
register_layout("deepseek_v3", MLA)


def layout_of(model_type: str | None) -> dict:
    """The common layout with the family's entries over it."""
    family = LAYOUTS.get(model_type) if model_type in LAYOUTS else {}
    return {**COMMON, **family}


def row_blocks(config, fused: Fused, p: int) -> list[tuple[tuple[int, int], ...]]:
    """Each kind's rows of a fused weight with ``p`` output rows: a tuple of (start, end) ranges per kind."""
    if fused.kinds != QKV:
        size = p // len(fused.kinds)
        if size * len(fused.kinds) != p:
            raise InputError(f"cannot split a fused projection of {p} rows into {fused.kinds}")
        return [((i * size, (i + 1) * size),) for i in range(len(fused.kinds))]
    heads, kv_heads = head_counts(config, fused)
    head = p // (heads + 2 * kv_heads)
    if head * (heads + 2 * kv_heads) != p:
        raise InputError(f"cannot split a fused q/k/v projection of {p} rows by {heads} query and {kv_heads} "
                         "key/value heads")
    if fused.split == "contiguous":
        q, kv = heads * head, kv_heads * head
        return [((0, q),), ((q, q + kv),), ((q + kv, q + 2 * kv),)]
    if fused.split == "per_head":  # [q, k, v] per head
        return [tuple((h * 3 * head + j * head, h * 3 * head + (j + 1) * head) for h in range(heads)) for j in range(3)]
    per_group = heads // kv_heads + 2  # grouped: per key/value group, its queries, then k, then v
    groups = [(g * per_group * head, (g + 1) * per_group * head) for g in range(kv_heads)]
    return [tuple((lo, hi - 2 * head) for lo, hi in groups), tuple((hi - 2 * head, hi - head) for lo, hi in groups),
            tuple((hi - head, hi) for lo, hi in groups)]


def head_counts(config, fused: Fused) -> tuple[int, int]:
    """(query heads, key/value heads) of a fused q/k/v projection, from the model's config."""
    heads = next(getattr(config, k) for k in ("num_attention_heads", "n_head", "num_heads") if hasattr(config, k))
    if fused.split == "per_head":
        return heads, heads
    if getattr(config, "model_type", "") == "falcon":
        if getattr(config, "new_decoder_architecture", False):
            return heads, config.num_kv_heads
        return (heads, 1) if getattr(config, "multi_query", True) else (heads, heads)
    return heads, getattr(config, "num_key_value_heads", None) or heads
