"""Hooks that capture each target's inputs X and output gradients Δ for one batch.

Inside ``GradientCapture`` every weight is frozen (no ``param.grad`` is ever allocated);
the input embeddings' output is made to require grad, so the backward pass runs through
activations only and the output-tensor hooks fire. Each hook turns (X, Δ) into the small
symmetric matrix whose eigenvalues are the squared singular values of that sample's
weight gradient (spectra.py) and drops Δ at once. Inputs shared by several targets
(q/k/v, gate/up, the blocks of a fused module) are recognised by tensor identity and
factored once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from . import spectra
from .projections import Target


@dataclass
class SharedInput:
    """One captured input tensor (B, T, d) in fp32, pad rows zeroed, and its lazy factor."""

    x: torch.Tensor
    source: torch.Tensor  # the original tensor, held so its identity stays unique
    users: int = 0
    _factor: torch.Tensor | None = None

    def factor(self) -> torch.Tensor:
        if self._factor is None:
            self._factor = spectra.input_factor(self.x)
        return self._factor


@dataclass
class Captured:
    """Result for one target: (B, n, n) matrices whose eigenvalues are σ², or σ² directly."""

    target: Target
    route: str
    matrices: torch.Tensor | None = None  # (B, n, n), fp64
    squared: list | None = None  # reference route: per-sample σ² (fp64)
    finite: torch.Tensor = field(default=None)  # (B,) bool


class GradientCapture:
    """Context manager: freeze weights, hook ``targets``, collect per-sample spectral matrices.

    ``route``: 'auto' (cost rule per target), 'core', 'dense', or 'reference' (G materialised
    per sample in fp64, exact SVD).
    """

    def __init__(self, model: nn.Module, targets: list[Target], *, route: str = "auto"):
        self.model, self.targets, self.route = model, targets, route
        self.mask: torch.Tensor | None = None  # (B, T) bool, True on real tokens
        self.results: list[Captured] = []
        self._inputs: dict[int, SharedInput] = {}
        self._handles: list = []
        self._saved_requires_grad: list[tuple[nn.Parameter, bool]] = []
        self.active = False

    # -- context -------------------------------------------------------------------------
    def __enter__(self) -> "GradientCapture":
        if self.active:
            raise RuntimeError("GradientCapture is already installed")
        self.active = True
        for param in self.model.parameters():
            self._saved_requires_grad.append((param, param.requires_grad))
            param.requires_grad_(False)
        emb = self.model.get_input_embeddings()
        self._handles.append(emb.register_forward_hook(lambda m, i, out: out.requires_grad_(True)))
        by_module: dict[int, list[Target]] = {}
        for t in self.targets:
            by_module.setdefault(id(t.module), []).append(t)
        for group in by_module.values():
            hook = self._make_forward_hook(group)
            self._handles.append(group[0].module.register_forward_hook(hook))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        for param, flag in self._saved_requires_grad:
            param.requires_grad_(flag)
        self._handles, self._saved_requires_grad = [], []
        self.reset()
        self.active = False

    def start_batch(self, mask: torch.Tensor) -> None:
        """Set the (B, T) real-token mask of the batch about to run; drop the last batch."""
        self.reset()
        self.mask = mask

    def reset(self) -> None:
        self.results, self._inputs, self.mask = [], {}, None

    # -- hooks ---------------------------------------------------------------------------
    def _make_forward_hook(self, group: list[Target]):
        def forward_hook(module, inputs, output):
            shared = self._shared_input(inputs[0], len(group))
            output.register_hook(lambda grad: self._on_output_grad(group, shared, grad))

        return forward_hook

    def _shared_input(self, x: torch.Tensor, users: int) -> SharedInput:
        key = id(x)
        if key not in self._inputs:
            real = self.mask.unsqueeze(-1).to(torch.float32)
            self._inputs[key] = SharedInput(x.detach().to(torch.float32) * real, x)
        shared = self._inputs[key]
        shared.users += users
        return shared

    def _on_output_grad(self, group: list[Target], shared: SharedInput, grad: torch.Tensor) -> None:
        for target in group:
            delta = grad if target.rows is None else grad[..., target.rows[0]:target.rows[1]]
            self.results.append(self._spectral_input(target, shared, delta.detach().to(torch.float32)))

    def _spectral_input(self, target: Target, shared: SharedInput, delta: torch.Tensor) -> Captured:
        finite = torch.isfinite(delta).flatten(1).all(1) & torch.isfinite(shared.x).flatten(1).all(1)
        delta = torch.where(finite.view(-1, 1, 1), delta, torch.zeros_like(delta))
        x = torch.where(finite.view(-1, 1, 1), shared.x, torch.zeros_like(shared.x))
        route = self._route(target, shared, x.shape[1])
        if route == "reference":
            sq = [spectra.reference_singular_values(x[i], delta[i]) ** 2 for i in range(x.shape[0])]
            return Captured(target, route, squared=sq, finite=finite)
        if route == "core":
            factor = shared.factor() if bool(finite.all()) else spectra.input_factor(x)
            return Captured(target, route, spectra.core_matrix(factor, delta), finite=finite)
        return Captured(target, route, spectra.dense_matrix(x, delta), finite=finite)

    def _route(self, target: Target, shared: SharedInput, t: int) -> str:
        if self.route != "auto":
            return self.route
        return spectra.choose_route(t, target.p, target.d, sharing=max(shared.users, 1))
