"""The loss a sample is scored by, and how much of the LM head a forward pass needs.

For every sample the loss is the mean token cross-entropy over its scored (response) tokens, in
fp32; a batch's loss is the sum of its samples' (PAPER.md §5), so each sample's gradients equal
those of a batch of one.
"""

from __future__ import annotations

import functools
import inspect

import torch
import torch.nn.functional as F

MIN_KEPT_LOGITS = 8  # the LM head always computes at least this many positions (logits_to_keep)


def logits_to_keep(model, scored: torch.Tensor) -> int:
    """Positions from the first scored token's predictor on: the LM head skips the prompt (0: all).

    On short answers after long prompts it saves most of the vocabulary projection, forward and
    backward (the model must accept ``logits_to_keep``). At least ``MIN_KEPT_LOGITS`` positions: a
    BLAS may take another kernel for a product of 1-3 rows (MKL does), and the LM head's backward
    sums over the whole vocabulary, so that kernel's rounding would reach every output gradient
    (measured on SmolLM2: 1.1e-5 relative error against fp64 for 1-3 rows, 5e-7 for 4 or more,
    whose rows equal the full product's bit for bit; tests/engine/test_compute.py checks it here).
    """
    if not accepts_logits_to_keep(type(model)):
        return 0
    hits = scored.any(0).nonzero()
    if not len(hits):
        return 0
    positions = scored.shape[1] + 1
    return min(positions, max(positions - int(hits[0]), MIN_KEPT_LOGITS))


@functools.cache
def accepts_logits_to_keep(model_class) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def response_losses(logits: torch.Tensor, ids: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """(B, T, V) logits -> (B,) mean cross-entropy over each sample's scored (response) tokens, fp32.

    ``logits[:, j]`` predicts ``ids[:, j + 1]``; ``scored`` (B, T - 1) marks the predicted tokens that count."""
    return ScoredCrossEntropy.apply(logits, ids[:, 1:], scored.float())


class ScoredCrossEntropy(torch.autograd.Function):
    """The mean token cross-entropy of ``response_losses`` with a backward that writes the logits' gradient in
    two passes over (B, T, V): w·softmax = exp(x − (logsumexp − log |w|)), then −w at each target (w = the
    token's weight times the incoming gradient; 0 outside the scored tokens, so exp gives exact zeros there;
    a negative w's rows change sign).
    Autograd's log_softmax + nll + slice backward makes six passes and three (B, T, V) temporaries; the
    numbers are the same to fp32 rounding (tests/engine/test_losses.py)."""

    @staticmethod
    def forward(ctx, logits, targets, weights):
        x = logits[:, :-1].float()
        picked = targets[..., None]
        token_loss = -torch.log_softmax(x, -1).gather(-1, picked).squeeze(-1)  # (B, T - 1); the fused kernel
        lse = x.gather(-1, picked).squeeze(-1) + token_loss  # (torch.logsumexp makes 4 passes over x)
        ctx.save_for_backward(logits, targets, weights, lse)
        return (token_loss * weights).sum(1) / weights.sum(1)

    @staticmethod
    def backward(ctx, grad):
        logits, targets, weights, lse = ctx.saved_tensors
        scale = weights * (grad / weights.sum(1))[:, None]  # (B, T - 1)
        shift = F.pad(lse - scale.abs().log(), (0, 1), value=float("inf"))  # the last position predicts nothing
        g = torch.sub(logits.float(), shift[..., None]).exp_()
        if (scale < 0).any():  # a negative incoming gradient (never from loss.backward())
            g[:, :-1].mul_(scale.sign()[..., None])
        g[:, :-1].scatter_add_(-1, targets[..., None], -scale[..., None])
        return g.to(logits.dtype), None, None
