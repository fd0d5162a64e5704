"""The model's linear products (its layers and LM head) on the fastest of three BLAS libraries for this CPU.

Most of a forward and backward pass is the linear layers' products, and which library runs them fastest
depends on the CPU: on an AMD EPYC (Zen 5) oneDNN's fp32 GEMM takes 0.45x the time of torch's default
(MKL) for every SmolLM2 shape, and numpy's OpenBLAS 0.75x for its LM head. So in a run each frozen
linear layer multiplies by the kernel the plan timed fastest for its shape, row count and thread budget
(``plan.product_kernels``, timed once per machine and cached):

- ``torch``: the module's own ``nn.Linear.forward`` (MKL in the x86 wheels);
- ``onednn``: oneDNN's fp32 inner product (``torch.ops.mkldnn._linear_pointwise``, in torch's CPU
  builds; exact fp32, no reduced-precision mode);
- ``numpy``: numpy's BLAS over fixed blocks of ``BLOCK`` output features, a one-thread call each
  (numpy's BLAS is held at one thread during a run; the worker threads share the calls), so its numbers
  do not depend on the thread budget: for a wide product such as the LM head.

The backward gives the input's gradient by the same kernel (the capture never asks for a weight's).
The plan's choice may differ between thread budgets and row counts, so runs under different budgets or
batchings may differ in the last bits (inline and pooled runs under one budget stay equal bit for bit);
a test model's tiny products always keep torch's.

Only a plain layer takes another kernel: exactly ``nn.Linear`` (not a quantised or adapter subclass) on a
CPU, fp32, its weight not trained (the capture's case), its forward not already replaced by someone else.
The model's own code around its layers (norms, soft-capping, scaling) runs unchanged.
``LAYERGRAD_PLAN=rules`` keeps torch's products everywhere.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from layergrad.engine import threads

BLOCK = 4096  # output features per numpy call (fixed: the blocks, and so the numbers, never depend on the threads)


def feature_blocks(n: int) -> list[slice]:
    return [slice(start, start + BLOCK) for start in range(0, n, BLOCK)]


def numpy_forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (..., d) · Wᵀ (d, n) by numpy's BLAS, one call per ``BLOCK`` output features, the calls shared by
    the workers."""
    flat = x.detach().reshape(-1, x.shape[-1]).contiguous()
    out = torch.empty(flat.shape[0], weight.shape[0], dtype=flat.dtype)
    left, w, result = flat.numpy(), weight.detach().numpy(), out.numpy()

    def block(cols: slice) -> None:
        np.matmul(left, w[cols].T, out=result[:, cols])

    threads.spread(block, feature_blocks(len(w)))
    return out.reshape(*x.shape[:-1], len(w))


def numpy_input_grad(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """∂y (..., n) · W (n, d) by numpy's BLAS, one call per ``BLOCK`` output features (shared by the
    workers), their partial products summed in block order."""
    flat = grad.detach().reshape(-1, grad.shape[-1]).contiguous()
    left, w = flat.numpy(), weight.detach().numpy()
    blocks = feature_blocks(len(w))
    parts: list = [None] * len(blocks)

    def block(k: int) -> None:
        parts[k] = left[:, blocks[k]] @ w[blocks[k]]

    threads.spread(block, range(len(blocks)))
    total = parts[0]
    for part in parts[1:]:
        total += part
    return torch.from_numpy(total).reshape(*grad.shape[:-1], w.shape[1])


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def onednn_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (..., k) · weightᵀ by oneDNN's fp32 inner product (weight (n, k), any strides)."""
    return torch.ops.mkldnn._linear_pointwise(x.detach(), weight.detach(), None, "none", [], "")


PRODUCTS = {  # kernel -> (y of x, ∂x of ∂y), each given the layer's weight
    "numpy": (numpy_forward, numpy_input_grad),
    "onednn": (onednn_linear, lambda grad, weight: onednn_linear(grad, weight.T)),
}


def kernels() -> list[str]:
    """The kernels this build offers (torch always)."""
    return ["torch", "numpy"] + (["onednn"] if onednn_available() else [])


class PlannedProduct(torch.autograd.Function):
    """y = x Wᵀ (+ b) and, backward, ∂x = ∂y · W, both by one of ``PRODUCTS`` (W and b get no gradient)."""

    @staticmethod
    def forward(ctx, x, weight, bias, kernel):
        ctx.save_for_backward(weight)
        ctx.kernel = kernel
        y = PRODUCTS[kernel][0](x, weight)
        return y if bias is None else y.add_(bias.detach())

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        return PRODUCTS[ctx.kernel][1](grad, weight), None, None, None


def plain_linear(module, frozen: bool = True) -> bool:
    """Whether another kernel than torch's can take ``module`` (see the module docstring; ``frozen``: its
    weight must not be trained)."""
    if type(module) is not nn.Linear or "forward" in vars(module):
        return False
    w = module.weight
    return w.device.type == "cpu" and w.dtype == torch.float32 and not (frozen and w.requires_grad)


def plain_linears(model) -> list[nn.Linear]:
    """The model's plain linear layers, its LM head (if plain) last."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    layers = [mod for mod in model.modules() if mod is not head and plain_linear(mod)]
    return layers + ([head] if head is not None and plain_linear(head) else [])


class PlannedProducts:
    """The logits the LM head of a ``planned_products`` body last returned (not torch's head)."""

    def __init__(self):
        self.logits: torch.Tensor | None = None

    def owns(self, logits: torch.Tensor) -> bool:
        """Whether ``logits`` is the planned LM head's own output (the model returned it untouched): nothing
        else holds it, so the loss may write its gradient over it."""
        return self.logits is logits


@contextmanager
def planned_products(model, kernels: dict):
    """In the body each module of ``kernels`` ({module: kernel}, plan.product_kernels chooses them) multiplies
    by its kernel ('torch': untouched); yields a PlannedProducts. The modules' own forwards after."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    planned = PlannedProducts()
    replaced = [mod for mod, kernel in kernels.items() if kernel != "torch" and plain_linear(mod)]
    for mod in replaced:
        mod.forward = replacement(mod, kernels[mod], planned if mod is head else None)
    try:
        yield planned
    finally:
        for mod in replaced:
            del mod.forward
        planned.logits = None


def replacement(mod: nn.Linear, kernel: str, planned: PlannedProducts | None):
    def forward(x):
        y = PlannedProduct.apply(x, mod.weight, mod.bias, kernel)
        if planned is not None:
            planned.logits = y
        return y

    return forward
