"""The original Layer_Gradient algorithm (docs/guide/how-it-works.md, "The measurement"), re-implemented as the baseline.

One sample at a time: full ``loss.backward()`` on every weight the original trains
(ndim > 1 and square or under ``self_attn``), then a full SVD (with U and V) of each
``param.grad`` in the model's dtype. Used by the paper-mode test and the benchmarks; slow
on purpose. Returns the original's per-sample JSON record.
"""

from __future__ import annotations

import torch

from layergrad.data.formatting import PAPER_MAX_LENGTH, PAPER_SYSTEM_PROMPT


def original_text(tokenizer, instruction: str, output: str, *, chat: bool, model_name: str) -> str:
    """The whole text the original script trains on."""
    if not chat:
        return instruction + "\n" + output
    messages = [{"role": "user", "content": instruction}]
    if "gemma" not in model_name:
        messages.insert(0, {"role": "system", "content": PAPER_SYSTEM_PROMPT})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + output


def original_record(model, tokenizer, instruction: str, output: str, *, chat: bool, model_name: str = "",
                    max_length: int = PAPER_MAX_LENGTH, vectors: bool = True) -> dict:
    """{'instruction', 'output', 'loss', '<param name>': {M_mean, ..., S_min}} for one sample.

    ``vectors=False`` takes the same singular values without U and V (LAPACK's values-only SVD: the
    same numbers to fp32 rounding, several times faster; the tests use it, the benchmarks do not)."""
    text = original_text(tokenizer, instruction, output, chat=chat, model_name=model_name)
    device = next(model.parameters()).device
    input_ids = tokenizer.encode(text, return_tensors="pt", truncation=True, max_length=max_length).to(device)
    start_token = len(tokenizer.encode(text[:text.rfind(output)]))
    for param in model.parameters():
        param.requires_grad = False
    for name, param in model.named_parameters():
        if param.ndim > 1 and (param.shape[0] == param.shape[1] or "self_attn" in name):
            param.requires_grad = True
    labels = input_ids.clone()
    labels[0, :start_token] = -100
    loss = model(input_ids, labels=labels).loss
    record = {"instruction": instruction, "output": output, "loss": loss.item()}
    loss.backward()
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        grad = param.grad
        s = torch.linalg.svd(grad)[1] if vectors else torch.linalg.svdvals(grad)
        record[name] = {"M_mean": grad.mean().item(), "M_max": grad.max().item(), "M_min": grad.min().item(),
                        "frobenius_norm": torch.linalg.norm(grad).item(), "S_sum": s.sum().item(),
                        "S_max": s.max().item(), "S_min": s.min().item()}
    model.zero_grad(set_to_none=True)
    for param in model.parameters():
        param.requires_grad = False
    return record
