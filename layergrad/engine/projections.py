"""Find the linear maps of every decoder layer and name them by their kind.

A target is any module that applies a linear map to its input — ``nn.Linear`` and its subclasses, GPT-2's
``Conv1D``, the base layer and the adapters of a PEFT LoRA layer, a quantised linear, a MoE router — found by
what it computes, not by its path; its kind comes from the model family's layout (layouts.py), and a fused
module (Phi-3 ``qkv_proj``, GPT-NeoX ``query_key_value``, ...) becomes one target per kind, its row blocks laid
out as the architecture lays them out. Each expert of a MoE block is a target of its own per matrix (kinds
``expert.gate_up_proj``, ``expert.down_proj``; experts.py). A module no layout names is measured under its
own name and listed as such in the run's coverage. Layer counts come from the model, never from its name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from torch import nn

from layergrad.engine import experts
from layergrad.engine.layouts import Fused, layout_of, row_blocks
from layergrad.engine.options import KINDS, kind_order  # declared beside the options, torch-free
from layergrad.errors import InputError, did_you_mean

ATTENTION_KINDS = KINDS[:4]
MLP_KINDS = KINDS[4:]
ADAPTERS = ("lora_A", "lora_B")  # a PEFT LoRA layer's adapters, measured as targets of their own
EXPERT = "expert."  # the kinds of one expert's matrices: expert.gate_up_proj, expert.down_proj (expert.up_proj)
ROUTER = "router"


@dataclass(frozen=True)
class Target:
    """One reported weight matrix: a whole linear module or the row blocks of one kind of a fused one."""

    layer: int
    kind: str
    param: str  # weight name; a fused block is suffixed with [kind]
    p: int  # output features of the block
    d: int  # input features
    rows: tuple[tuple[int, int], ...] | None = None  # output row ranges inside a fused module
    module: nn.Module = field(default=None, compare=False, repr=False)
    named: bool = True  # False: no layout names its module (measured under its own name)
    expert: int | None = None  # the expert's index in its MoE block's 3-D parameter

    @property
    def weight(self) -> str:
        """The weight parameter's name (a fused block's without its [kind])."""
        return self.param.split("[")[0]

    @property
    def block(self) -> str:
        """'attention' or 'mlp' (what --modules attn|mlp select): by the kind, else by the module's path."""
        base = self.kind.split(".")[0]
        if base in ATTENTION_KINDS or (base not in MLP_KINDS and re.search(r"att", self.param)):
            return "attention"
        return "mlp" if base in MLP_KINDS or re.search(r"mlp|ffn|fc", self.param) else "other"


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
    """(in, out) of an nn.Linear, a quantised linear, a GPT-2 Conv1D (whose weight is stored transposed) or a
    MoE router."""
    if isinstance(module, nn.Linear) or quantised_linear(module):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":
        d, p = module.weight.shape
        return d, p
    if experts.is_router(module):
        p, d = module.weight.shape
        return d, p
    raise TypeError(type(module).__name__)


def is_linear(module: nn.Module) -> bool:
    return (isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D" or experts.is_router(module)
            or quantised_linear(module))


def quantised_linear(module: nn.Module) -> bool:
    """A leaf module that is not an nn.Linear but keeps ``in_features``/``out_features`` (AWQ, HQQ, ... linears
    over packed weights): a linear map, whose gradient is taken with respect to the weight it applies."""
    sizes = (getattr(module, "in_features", None), getattr(module, "out_features", None))
    return all(isinstance(n, int) for n in sizes) and next(module.children(), None) is None


def take_rows(tensor, rows: tuple[tuple[int, int], ...]):
    """The last axis's entries in ``rows`` (ranges, in order): a view for one range, else a copy."""
    import torch

    if len(rows) == 1:
        return tensor[..., rows[0][0]:rows[0][1]]
    return torch.cat([tensor[..., a:b] for a, b in rows], dim=-1)


def kind_of(layout: dict, path: str) -> tuple[str | Fused, bool]:
    """(kind or Fused, whether a layout names it) of a module path inside a decoder layer; a LoRA layer's base
    layer takes its layer's kind, its adapters '<kind>.lora_A' / '<kind>.lora_B'."""
    parts = path.split(".")
    if parts[-1] == "base_layer":
        return kind_of(layout, ".".join(parts[:-1]))
    for adapter in ADAPTERS:
        if adapter in parts[:-1]:
            at = parts.index(adapter)
            base, named = kind_of(layout, ".".join(parts[:at]))
            return f"{base if isinstance(base, str) else parts[at - 1]}.{adapter}", named
    if path in layout:
        return layout[path], True
    return parts[-1], False


def all_targets(model: nn.Module) -> list[Target]:
    """Every linear map of every decoder layer, in layer then kind order."""
    prefix, layers = decoder_layers(model)
    layout = layout_of(getattr(model.config, "model_type", None))
    found = []
    for i, layer in enumerate(layers):
        for path, mod in layer.named_modules():
            if path and experts.is_experts(mod):
                found += expert_targets(i, f"{prefix}.{i}.{path}", mod)
            if not path or not is_linear(mod):
                continue
            d, p = in_out_features(mod)
            kind, named = (ROUTER, True) if experts.is_router(mod) else kind_of(layout, path)
            name = f"{prefix}.{i}.{path}.weight"
            if isinstance(kind, Fused):
                for block, rows in zip(kind.kinds, row_blocks(model.config, kind, p)):
                    found.append(Target(i, block, f"{name}[{block}]", sum(b - a for a, b in rows), d, rows, mod))
            else:
                found.append(Target(i, kind, name, p, d, None, mod, named))
    return sorted(found, key=lambda t: (t.layer, kind_order(t.kind), t.weight, t.expert or 0, t.param))


def expert_targets(layer: int, path: str, module: nn.Module) -> list[Target]:
    """One target per expert and matrix of a MoE block's experts (engine/experts.py)."""
    return [Target(layer, EXPERT + name, f"{path}.{name}[{e}]", p, d, None, module, True, e)
            for name, p, d in experts.matrices(module) for e in range(module.num_experts)]


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
        kinds = parse_kinds(modules, available, targets)
        chosen = [t for t in targets if t.kind in kinds]
    if not chosen:
        raise InputError(f"no module matches {modules!r}; this model has: {', '.join(available)}")
    return chosen


SELECTION_GROUPS = ("all", "attn", "mlp")


def parse_kinds(modules, available, targets=()) -> set[str]:
    """'all' (every kind the model has) / 'attn' / 'mlp' (by the targets' blocks) / 'q_proj,k_proj' /
    ['q_proj'] -> set of kinds, unknown names rejected."""
    names = modules.split(",") if isinstance(modules, str) else list(modules)
    groups = {"all": set(available) | set(KINDS), "attn": set(ATTENTION_KINDS), "mlp": set(MLP_KINDS)}
    for t in targets:
        groups[{"attention": "attn", "mlp": "mlp"}.get(t.block, "all")].add(t.kind)
    kinds = set()
    for name in (n.strip() for n in names if n.strip()):
        if name in groups:
            kinds.update(groups[name])
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


def coverage(model: nn.Module, chosen: list[Target]) -> dict:
    """Every weight matrix of the decoder layers (each 2-D parameter; each expert's slice of a 3-D one), measured
    or not, and why not: {'matrices', 'measured', 'kinds': {kind: count}, 'not_measured': {reason: [param,
    experts as param[0-63]]}, 'not_measured_count': {reason: matrices}, 'own_names': [params no layout names,
    measured under their own name]}."""
    prefix, _ = decoder_layers(model)
    known = {(t.weight, t.expert): t for t in all_targets(model)}
    measured = {(t.weight, t.expert) for t in chosen}
    layers = {t.layer for t in chosen}
    missing: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    units = list(parameter_units(model, prefix))
    total = len(units) + len(measured - set(units))  # + linears over packed weights (no parameter of their own)
    params = dict(model.named_parameters())
    absent: dict[tuple[str, str], list] = {}
    for name, unit in units:
        if (name, unit) not in measured:
            reason = why_not(model, name, params[name], known.get((name, unit)), layers)
            absent.setdefault((name, reason), []).append(unit)
    for (name, reason), which in absent.items():
        missing.setdefault(reason, []).append(name if which == [None] else f"{name}[{index_ranges(which)}]")
        counts[reason] = counts.get(reason, 0) + len(which)
    kinds: dict[str, int] = {}
    for t in chosen:
        kinds[t.kind] = kinds.get(t.kind, 0) + 1
    return {"matrices": total, "measured": len(measured), "kinds": kinds, "not_measured": missing,
            "not_measured_count": counts, "own_names": sorted({t.param for t in chosen if not t.named})}


def is_matrix(name: str, param) -> bool:
    """A weight matrix: a parameter of two or more dimensions, not a bias (gpt-oss keeps its experts' biases as
    [E, out] parameters)."""
    return param.ndim >= 2 and not name.endswith("bias")


def parameter_units(model: nn.Module, prefix: str):
    """(name, expert or None) of every weight matrix held as a parameter of the decoder layers."""
    for name, param in model.named_parameters():
        if name.startswith(prefix + ".") and is_matrix(name, param):
            yield from ((name, e) for e in (range(param.shape[0]) if param.ndim == 3 else [None]))


def index_ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)


NOT_ASKED = ("not in the layers asked (--layers)", "not among the modules asked (--modules)")


def why_not(model: nn.Module, name: str, param, target: Target | None, layers: set[int]) -> str:
    """Why a decoder weight matrix was not measured, in words."""
    if target is not None:
        return NOT_ASKED[0] if target.layer not in layers else NOT_ASKED[1]
    owner = type(model.get_submodule(name.rsplit(".", 1)[0])).__name__
    if param.ndim == 3:
        return f"MoE experts of {owner}, which does not follow transformers' experts interface: not measured"
    if name.rsplit(".", 2)[-2] in ("gate", "router"):
        return f"MoE router {owner} (not a linear map layergrad recognises): not measured"
    return f"{owner}: not a linear module layergrad knows"


def unexpected(summary: dict) -> bool:
    """Whether the coverage holds more than the user asked to leave out: a warning's worth."""
    return bool(summary["own_names"]) or any(reason not in NOT_ASKED for reason in summary["not_measured"])


def coverage_line(summary: dict) -> str:
    """One line: how many decoder weight matrices were measured, by kind; the rest by reason."""
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(summary["kinds"].items(), key=lambda kv: kind_order(kv[0])))
    line = f"coverage: {summary['measured']} of {summary['matrices']} decoder weight matrices measured ({kinds})"
    for reason, names in summary["not_measured"].items():
        count = summary.get("not_measured_count", {}).get(reason, len(names))
        line += f"; {count} not measured, {reason} (e.g. {names[0]})"
    if summary["own_names"]:
        line += f"; {len(summary['own_names'])} measured under their own names, no layout names them (e.g. " \
                f"{summary['own_names'][0]})"
    return line
