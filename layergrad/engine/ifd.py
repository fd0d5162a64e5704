"""IFD, the instruction-following difficulty (Li et al., "From Quantity to Quality", 2024; the
follow-up paper's data-quality metric): how much the instruction helps the model predict the
response, ppl(response | instruction) / ppl(response alone) = exp(loss_conditioned - loss_direct).
Forward passes only, outside the capture (no backward, no gradient).

Default mode: the conditioned loss is the sample's own loss (the gradient pass: its formatting,
its chat template, its end-of-turn token). The direct loss comes from one extra forward of *the
response without the prompt*: the very response tokens the gradient pass scores (end-of-turn
included), preceded only by what opens the model's turn: the BOS token when the full sequence
starts with one, and under a chat template the assistant header its generation prompt adds (e.g.
``<|im_start|>assistant\\n``); the same tokens are scored. With neither BOS nor header the first
response token has nothing to be predicted from and is not scored.

``paper=True``: the follow-up's ``metrics/cal_ifd.py`` + ``process_ifd.py`` (Superfiltering's
code) exactly, apart from the gradient pass: prompt ``"{instruction}\\n"`` (``"{instruction}\\n
{input}\\n"``), no chat template; conditioned loss = mean cross-entropy of the response after it
(boundary ``len(encode(text[:text.rfind(output)]))``, text truncated to max_length); direct loss =
``model(ids, labels=ids)`` on ``encode(output)`` truncated to ``max_length - prompt_tokens + 1``;
IFD = ppl ratio. Both from their own forwards.

A sample whose IFD cannot be computed keeps its spectra: ``ifd`` is NaN and ``ifd_note`` says why;
IFD > 1 is kept and flagged there (the follow-up drops those records when selecting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from layergrad.data.formatting import Encoded, Formatter, first_tokens
from layergrad.data.samples import Sample
from layergrad.engine import plan
from layergrad.engine.batching import Item, pad_batch
from layergrad.engine.losses import logits_to_keep, response_losses
from layergrad.engine.products import planned_products

ABOVE_ONE = "IFD > 1: the instruction makes the response harder to predict (the follow-up drops these)"


@dataclass(frozen=True)
class IfdInput:
    """The sequences one sample's IFD needs: direct, and (paper mode) its own conditioned one."""

    direct: Encoded | None
    conditioned: Encoded | None = None
    note: str = ""  # why the IFD cannot be computed ('' when it can)


def ifd_input(formatter: Formatter, sample: Sample, encoded: Encoded) -> IfdInput:
    return paper_input(formatter, sample) if formatter.paper else default_input(formatter, encoded)


def default_input(formatter: Formatter, encoded: Encoded) -> IfdInput:
    prefix = list(formatter.turn_opening())
    ids = encoded.input_ids
    if formatter.tok.bos_token_id is not None and ids and ids[0] == formatter.tok.bos_token_id:
        prefix = [ids[0]] + prefix
    direct = Encoded(tuple(prefix) + tuple(ids[encoded.n_prompt:]), len(prefix), encoded.truncated, "direct")
    if direct.n_response == 0:
        return IfdInput(None, note="a one-token response with nothing before it: no token to score alone")
    return IfdInput(direct)


def paper_input(formatter: Formatter, sample: Sample) -> IfdInput:
    tok, max_length = formatter.tok, formatter.max_length
    prompt = sample.prompt + "\n"
    text = prompt + sample.response
    ids = tok.encode(text, truncation=True, max_length=max_length)
    start = len(tok.encode(text[:text.rfind(sample.response)]))
    conditioned = first_tokens(Encoded(tuple(ids), start, len(ids) == max_length, "paper"), sample.first_tokens)
    room = max_length - len(tok.encode(prompt, truncation=True, max_length=max_length)) + 1
    if conditioned.n_response == 0 or room < 2:
        return IfdInput(None, note="the instruction fills max_length: no response token to score")
    response = tok.encode(sample.response, truncation=True, max_length=room)[:sample.first_tokens]  # the same tokens
    direct = Encoded(tuple(response), 0, False, "paper")
    if direct.n_response == 0:
        return IfdInput(None, note="a one-token response: no token to score alone")
    return IfdInput(direct, conditioned)


def sequence_losses(m, encoded: list[Encoded], device) -> list[float]:
    """Mean cross-entropy of each sequence's scored tokens (positions n_prompt on), one padded
    forward pass without gradients."""
    if not encoded:
        return []
    pad_id = m.tokenizer.pad_token_id if m.tokenizer.pad_token_id is not None else 0
    ids, mask, scored = pad_batch([Item("", None, e) for e in encoded], pad_id, device)
    keep = logits_to_keep(m.model, scored)
    kernels = plan.product_kernels(m.model, ids, keep)
    with torch.no_grad(), planned_products(m.model, kernels):
        logits = m.model(input_ids=ids, attention_mask=mask.long(), use_cache=False,
                         **({"logits_to_keep": keep} if keep else {})).logits
        first = ids.shape[1] - logits.shape[1]
        return response_losses(logits, ids[:, first:], scored[:, first:]).tolist()


def ifd_columns(m, inputs: list[IfdInput], own_losses: list[float], device) -> list[dict]:
    """loss_conditioned, loss_direct, ifd, ifd_note of each sample."""
    usable = [i for i, x in enumerate(inputs) if x.direct is not None]
    direct = dict(zip(usable, sequence_losses(m, [inputs[i].direct for i in usable], device)))
    paper = [i for i in usable if inputs[i].conditioned is not None]
    conditioned = dict(zip(paper, sequence_losses(m, [inputs[i].conditioned for i in paper], device)))
    rows = []
    for i, x in enumerate(inputs):
        if i not in direct:
            rows.append({"loss_conditioned": math.nan, "loss_direct": math.nan, "ifd": math.nan, "ifd_note": x.note})
            continue
        lc, ld = conditioned.get(i, own_losses[i]), direct[i]
        value = math.exp(lc - ld) if math.isfinite(lc - ld) else math.nan
        note = ABOVE_ONE if value > 1 else "" if math.isfinite(value) else "non-finite loss"
        rows.append({"loss_conditioned": lc, "loss_direct": ld, "ifd": value, "ifd_note": note})
    return rows
