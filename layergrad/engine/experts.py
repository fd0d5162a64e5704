"""Mixture-of-experts layers measured per expert: the routed experts of ``transformers``' experts
interface, and the router.

The experts of a ``transformers`` MoE block (Mixtral, Qwen2/Qwen3-MoE, OLMoE, DeepSeek-V2/V3, gpt-oss, ...;
every class made with ``use_experts_implementation``) keep all experts' weights in 3-D parameters —
``gate_up_proj`` [E, 2I, H] (or ``up_proj`` without a gate), ``down_proj`` [E, H, I], transposed where the
family stores them so — and apply them inside one forward. Expert e's weight gradient is
G_e = Σ_tokens routed to e  Δ_tᵀ x_t: the same factored form as any linear map, over the tokens routed to it
only. While measured, the experts' forward is the interface's own eager loop (``measuring_forward``: per
expert hit, its linear maps, the family's gate (``_apply_gate``) or activation, biases, the optional
post-expert norm, the routing weight applied after ``down_proj`` as the model applies it) with each expert's
input and output kept, so the gradient captured at its output carries the routing weight exactly.

A router (``*Router`` with a 2-D ``weight`` [E, H]) computes ``F.linear(hidden, weight)`` and returns those
logits first: it is a linear target like any other, measured at its first output.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

INTERFACE = ("num_experts", "has_gate", "has_bias", "is_transposed")  # set by transformers' use_experts_implementation


def is_experts(module: nn.Module) -> bool:
    """Whether ``module`` is a block of experts that follows ``transformers``' experts interface."""
    weights = [getattr(module, n, None) for n in ("down_proj", "gate_up_proj" if getattr(module, "has_gate", True)
                                                 else "up_proj")]
    return all(hasattr(module, a) for a in INTERFACE) and all(isinstance(w, nn.Parameter) and w.ndim == 3
                                                             for w in weights)


def holds_experts(module: nn.Module) -> bool:
    """Whether ``module`` holds 3-D expert weights of its own (whether or not it follows the interface)."""
    return any(p.ndim == 3 for p in module.parameters(recurse=False))


def matrices(module: nn.Module) -> list[tuple[str, int, int]]:
    """(parameter name, output features, input features) of each expert's matrices, in forward order."""
    out = []
    for name in ("gate_up_proj" if module.has_gate else "up_proj", "down_proj"):
        _, a, b = getattr(module, name).shape
        out.append((name, b, a) if module.is_transposed else (name, a, b))
    return out


def is_router(module: nn.Module) -> bool:
    """A MoE router: a ``*Router`` module whose 2-D ``weight`` [E, H] gives the logits it returns first."""
    weight = getattr(module, "weight", None)
    return type(module).__name__.lower().endswith("router") and isinstance(weight, nn.Parameter) and weight.ndim == 2


def router_logits(output):
    """The logits a router returns (its first output)."""
    return output[0] if isinstance(output, (tuple, list)) else output


def expert_linear(module: nn.Module, name: str, expert: int, x: torch.Tensor) -> torch.Tensor:
    """x through expert ``expert``'s matrix ``name`` (and its bias), as the interface stores it."""
    weight = getattr(module, name)[expert]
    y = x @ weight if module.is_transposed else F.linear(x, weight)
    if module.has_bias:
        y = y + getattr(module, f"{name}_bias")[expert]
    return y


Seen = Callable[[nn.Module, int, str, torch.Tensor, torch.Tensor, torch.Tensor], None]


def measuring_forward(module: nn.Module, seen: Seen):
    """The interface's eager forward with ``seen(module, expert, matrix, input, token_index, output)`` called on
    each expert's each linear map (its input rows, the flat token index of each row, its output)."""
    first, _, _ = matrices(module)[0]

    def forward(hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(hidden_states)
        for expert in torch.unique(top_k_index).tolist():
            if expert >= module.num_experts:  # an expert-parallel sentinel: no expert of this rank
                continue
            token, slot = torch.where(top_k_index == expert)
            x = hidden_states[token]
            h = expert_linear(module, first, expert, x)
            seen(module, expert, first, x, token, h)
            a = module._apply_gate(h) if module.has_gate else module.act_fn(h)
            y = expert_linear(module, "down_proj", expert, a)
            seen(module, expert, "down_proj", a, token, y)
            if getattr(module, "has_post_expert_norm", False):
                y = module.post_expert_norm(y)
            out.index_add_(0, token, (y * top_k_weights[token, slot, None]).to(out.dtype))
        return out

    return forward


class Installed:
    """The measuring forward set on one experts module; ``remove()`` gives the module its own back."""

    def __init__(self, module: nn.Module, seen: Seen):
        self.module = module
        module.forward = measuring_forward(module, seen)

    def remove(self) -> None:
        self.module.__dict__.pop("forward", None)


def pack_by_sample(rows: torch.Tensor, sample: torch.Tensor, position: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """(B, max count, n): each sample's rows in token order, zero after its last (``position``: a row's place
    among its sample's rows)."""
    packed = rows.new_zeros(len(counts), max(max(counts), 1), rows.shape[-1])
    packed[sample, position] = rows
    return packed


def routed_rows(token: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """Of an expert's rows (their flat token indices, ascending): which are real tokens, the sample and place
    among that sample's rows of each real one, and the real tokens routed per sample."""
    b, t = mask.shape
    real = mask.reshape(-1)[token]
    kept = token[real]
    sample = torch.div(kept, t, rounding_mode="floor")
    counts = torch.bincount(sample, minlength=b)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(len(kept), device=kept.device) - starts[sample]
    return real, sample, position, counts.tolist()


def union_spectra(captured: list, batch_size: int) -> tuple[list, list[bool]]:
    """Per sample of the batch, the σ² of all of one matrix's experts together (descending, fp64; a zero where
    none has rows) and whether every expert's were finite: the spectrum of diag(G_1, ..., G_E)."""
    squared: list[list] = [[] for _ in range(batch_size)]
    finite = [True] * batch_size
    for cap in captured:
        for part in cap.parts:
            for j, k in enumerate(range(part.span.start, part.span.stop)):
                if cap.routed[k]:
                    squared[k].append(part.squared[j].to("cpu", torch.float64))
                    finite[k] = finite[k] and bool(part.finite[j])
    union = [torch.sort(torch.cat(rows), descending=True).values if rows else torch.zeros(1, dtype=torch.float64)
             for rows in squared]
    return union, finite
