"""Group encoded samples into padded batches: by a token budget or a fixed size.

Samples are sorted by length (longest first, so a batch that does not fit in memory shows up
at once) and cut into batches whose padded size, batch × longest, stays within
``batch_tokens``; or into groups of ``batch_size``. Right padding keeps positions unchanged,
so each sample's numbers equal its one-at-a-time numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from layergrad.data.formatting import Encoded
from layergrad.data.samples import Sample

DEFAULT_BATCH_TOKENS = 2048


@dataclass(frozen=True)
class Item:
    """A sample ready to run: its condition, the sample, its tokens (and, with ifd, its IFD inputs)."""

    condition: str
    sample: Sample
    encoded: Encoded
    ifd: object = None  # engine.ifd.IfdInput


def plan_batches(items: list[Item], *, batch_size: int | None = None,
                 batch_tokens: int | None = None) -> list[list[Item]]:
    """Length-sorted batches; ``batch_size`` wins over ``batch_tokens`` when both are given."""
    ordered = sorted(items, key=lambda it: (-it.encoded.n_tokens, it.condition, it.sample.source_index))
    if batch_size:
        return [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]
    budget = batch_tokens or DEFAULT_BATCH_TOKENS
    batches, current = [], []
    for item in ordered:
        longest = current[0].encoded.n_tokens if current else item.encoded.n_tokens
        if current and (len(current) + 1) * longest > budget:
            batches.append(current)
            current = []
        current.append(item)
    if current:
        batches.append(current)
    return batches


def pad_batch(items: list[Item], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> input_ids (B, T), attention mask (B, T) bool, scored (B, T-1) bool: which next tokens the loss scores.

    Token t+1 is predicted at position t; a sample's scored tokens are its response tokens
    (positions n_prompt .. n_tokens-1, never position 0).
    """
    longest = max(it.encoded.n_tokens for it in items)
    ids = torch.full((len(items), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), longest), dtype=torch.bool)
    scored = torch.zeros((len(items), longest - 1), dtype=torch.bool)
    for row, it in enumerate(items):
        n = it.encoded.n_tokens
        ids[row, :n] = torch.tensor(it.encoded.input_ids)
        mask[row, :n] = True
        scored[row, max(it.encoded.n_prompt, 1) - 1: n - 1] = True
    return ids.to(device), mask.to(device), scored.to(device)
