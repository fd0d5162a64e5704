"""Find the linear projections of every decoder layer and name them by their HF kind.

One table per layout maps module paths inside a decoder layer to the kinds
q_proj k_proj v_proj o_proj gate_proj up_proj down_proj. Fused modules (Phi-3 ``qkv_proj``,
``gate_up_proj``; GPT-2 ``c_attn``) become several targets, one per row block of the
weight, so every kind is reported on its own. Layer counts come from the model, never
from its name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from torch import nn

from layergrad.engine.options import KINDS  # declared beside the options, torch-free
from layergrad.errors import InputError, did_you_mean

ATTENTION_KINDS = KINDS[:4]
MLP_KINDS = KINDS[4:]
SELECTION_GROUPS = {"all": KINDS, "attn": ATTENTION_KINDS, "mlp": MLP_KINDS}

# module path inside a decoder layer -> kinds of its output row blocks
LAYOUT = {
    "self_attn.q_proj": ("q_proj",), "self_attn.k_proj": ("k_proj",),
    "self_attn.v_proj": ("v_proj",), "self_attn.o_proj": ("o_proj",),
    "mlp.gate_proj": ("gate_proj",), "mlp.up_proj": ("up_proj",), "mlp.down_proj": ("down_proj",),
    "self_attn.qkv_proj": ("q_proj", "k_proj", "v_proj"),  # Phi-3
    "mlp.gate_up_proj": ("gate_proj", "up_proj"),  # Phi-3
    "attn.c_attn": ("q_proj", "k_proj", "v_proj"),  # GPT-2 (Conv1D)
    "attn.c_proj": ("o_proj",), "mlp.c_fc": ("up_proj",), "mlp.c_proj": ("down_proj",),
}


@dataclass(frozen=True)
class Target:
    """One reported weight matrix: a whole linear module or a row block of a fused one."""

    layer: int
    kind: str
    param: str  # weight name; a fused block is suffixed with [kind]
    p: int  # output features of the block
    d: int  # input features
    rows: tuple[int, int] | None = None  # output slice inside a fused module
    module: nn.Module = field(default=None, compare=False, repr=False)


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's list of decoder blocks: the longest ModuleList of same-class modules."""
    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > 0:
            if len({type(m) for m in mod}) == 1 and (best is None or len(mod) > len(best[1])):
                best = (name, mod)
    if best is None:
        raise InputError("cannot find the decoder layers of this model (no nn.ModuleList of blocks)")
    return best


def in_out_features(module: nn.Module) -> tuple[int, int]:
    """(in, out) of an nn.Linear or a GPT-2 Conv1D (whose weight is stored transposed)."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":
        d, p = module.weight.shape
        return d, p
    raise TypeError(type(module).__name__)


def is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def split_rows(model: nn.Module, kinds: tuple[str, ...], p: int) -> list[tuple[int, int]]:
    """Row blocks of a fused projection: q/k/v by head counts, others in equal parts."""
    cfg = model.config
    if kinds == ("q_proj", "k_proj", "v_proj") and hasattr(cfg, "num_key_value_heads"):
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        q, kv = cfg.num_attention_heads * head_dim, cfg.num_key_value_heads * head_dim
        sizes = [q, kv, kv]
    else:
        sizes = [p // len(kinds)] * len(kinds)
    if sum(sizes) != p:
        raise InputError(f"cannot split a fused projection of {p} rows into {kinds}")
    bounds, start = [], 0
    for size in sizes:
        bounds.append((start, start + size))
        start += size
    return bounds


def all_targets(model: nn.Module) -> list[Target]:
    """Every linear projection of every decoder layer, in layer then kind order."""
    prefix, layers = decoder_layers(model)
    found = []
    for i, layer in enumerate(layers):
        for path, mod in layer.named_modules():
            if not path or not is_linear(mod):
                continue
            d, p = in_out_features(mod)
            kinds = LAYOUT.get(path, (path.rsplit(".", 1)[-1],))
            bounds = split_rows(model, kinds, p) if len(kinds) > 1 else [None]
            name = f"{prefix}.{i}.{path}.weight"
            for kind, rows in zip(kinds, bounds):
                block_p = p if rows is None else rows[1] - rows[0]
                param = name if rows is None else f"{name}[{kind}]"
                found.append(Target(i, kind, param, block_p, d, rows, mod))
    order = {k: n for n, k in enumerate(KINDS)}
    return sorted(found, key=lambda t: (t.layer, order.get(t.kind, len(order)), t.param))


def select_targets(model: nn.Module, modules="all", layers=None) -> list[Target]:
    """Targets chosen by 'all' | 'attn' | 'mlp' | kind list | 're:<regex on param names>', in the layers
    ``layers`` selects (engine/layers.py; None: every layer)."""
    from layergrad.engine.layers import parse_layers

    targets = all_targets(model)
    keep = set(parse_layers(layers, len(decoder_layers(model)[1])))
    targets = [t for t in targets if t.layer in keep]
    available = sorted({t.kind for t in targets}, key=lambda k: (k not in KINDS, k))
    if isinstance(modules, str) and modules.startswith("re:"):
        pattern = re.compile(modules[3:])
        chosen = [t for t in targets if pattern.search(t.param)]
    else:
        kinds = parse_kinds(modules, available)
        chosen = [t for t in targets if t.kind in kinds]
    if not chosen:
        raise InputError(f"no module matches {modules!r}; this model has: {', '.join(available)}")
    return chosen


def parse_kinds(modules, available) -> set[str]:
    """'all' / 'attn' / 'q_proj,k_proj' / ['q_proj'] -> set of kinds, unknown names rejected."""
    names = modules.split(",") if isinstance(modules, str) else list(modules)
    kinds = set()
    for name in (n.strip() for n in names if n.strip()):
        if name in SELECTION_GROUPS:
            kinds.update(SELECTION_GROUPS[name])
        elif name in available or name in KINDS:
            kinds.add(name)
        else:
            hint = did_you_mean(name, list(available) + list(SELECTION_GROUPS))
            raise InputError(f"unknown module kind '{name}'.{hint} Available: {', '.join(available)}, "
                             "or all/attn/mlp, or re:<regex>")
    return kinds


READ_TOGETHER = {"q_proj": "attention input", "k_proj": "attention input", "v_proj": "attention input",
                 "gate_proj": "MLP input", "up_proj": "MLP input"}  # kinds that read the same tensor of a layer


def input_sharing(targets: list[Target]) -> list[tuple[Target, int]]:
    """Each target with the number of chosen targets that read its input (q/k/v share the attention
    input, gate/up the MLP input, the blocks of a fused module their module's): the inputs factored once."""
    def group(t: Target):
        return (t.layer, READ_TOGETHER.get(t.kind, t.param))

    counts: dict = {}
    for t in targets:
        counts[group(t)] = counts.get(group(t), 0) + 1
    return [(t, counts[group(t)]) for t in targets]
