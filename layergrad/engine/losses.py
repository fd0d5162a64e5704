"""The loss a sample is scored by, and how much of the LM head a forward pass needs.

For every sample the loss is the mean token cross-entropy over its scored (response) tokens, in
fp32; a batch's loss is the sum of its samples' (docs/guide/how-it-works.md, "Exact and fast"), so each sample's gradients equal
those of a batch of one.
"""

from __future__ import annotations

import functools
import inspect
import itertools

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


CHUNK_ELEMENTS = 1 << 22  # logits per log_softmax call of the forward (16 MB: the temporary is reused, never faulted in)


def response_losses(logits: torch.Tensor, ids: torch.Tensor, scored: torch.Tensor, *,
                    reuse_logits: bool = False) -> torch.Tensor:
    """(B, T, V) logits -> (B,) mean cross-entropy over each sample's scored (response) tokens, fp32.

    ``logits[:, j]`` predicts ``ids[:, j + 1]``; ``scored`` (B, T - 1) marks the predicted tokens that count.
    ``reuse_logits``: nothing else holds the logits (fp32, the LM head's own output), so the backward writes
    their gradient over them instead of into a new (B, T, V) tensor."""
    return ScoredCrossEntropy.apply(logits, ids[:, 1:], scored.float(), reuse_logits)


class ScoredCrossEntropy(torch.autograd.Function):
    """The mean token cross-entropy of ``response_losses`` with a forward in row chunks (no (B, T, V)
    temporary) and a backward that writes the logits' gradient in two passes over (B, T, V):
    w·softmax = exp(x − (logsumexp − log |w|)), then −w at each target (w = the token's weight times the
    incoming gradient; 0 outside the scored tokens, so exp gives exact zeros there; a negative w's rows
    change sign).
    Autograd's log_softmax + nll + slice backward makes six passes and three (B, T, V) temporaries; the
    numbers are the same to fp32 rounding (tests/engine/test_losses.py). A (B, T, V) tensor costs its
    page faults on every batch (30 ms for 170 MB on an AMD EPYC), as much as the passes themselves."""

    @staticmethod
    def forward(ctx, logits, targets, weights, reuse_logits=False):
        x = logits[:, :-1].float()
        rows = max(1, CHUNK_ELEMENTS // max(x.shape[-1], 1))
        token_loss = x.new_empty(targets.shape)
        for b, i in itertools.product(range(x.shape[0]), range(0, x.shape[1], rows)):  # per row the kernel of
            chunk = x[b, i:i + rows]  # one call over (B, T, V): the chunks change no number
            token_loss[b, i:i + rows] = -torch.log_softmax(chunk, -1).gather(-1, targets[b, i:i + rows, None])[:, 0]
        lse = x.gather(-1, targets[..., None]).squeeze(-1) + token_loss  # (torch.logsumexp: 4 passes over x)
        ctx.save_for_backward(logits, targets, weights, lse)
        ctx.reuse_logits = reuse_logits and logits.dtype == torch.float32
        return (token_loss * weights).sum(1) / weights.sum(1)

    @staticmethod
    def backward(ctx, grad):
        logits, targets, weights, lse = ctx.saved_tensors
        scale = weights * (grad / weights.sum(1))[:, None]  # (B, T - 1)
        shift = F.pad(lse - scale.abs().log(), (0, 1), value=float("inf"))  # the last position predicts nothing
        if ctx.reuse_logits:
            g = logits.sub_(shift[..., None]).exp_()
        else:
            g = torch.sub(logits.float(), shift[..., None]).exp_()
        if (scale < 0).any():  # a negative incoming gradient (never from loss.backward())
            g[:, :-1].mul_(scale.sign()[..., None])
        g[:, :-1].scatter_add_(-1, targets[..., None], -scale[..., None])
        return g.to(logits.dtype), None, None, None
