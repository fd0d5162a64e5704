"""The baseline the benchmarks time layergrad against: a plain fine-tuning step, and the paper's
GSM8K styles they run it on."""

import time

from layergrad.engine.batching import pad_batch

STYLES = {"none": "gsm8k/none", "simplified": "gsm8k/simplified", "detailed": "gsm8k/detailed"}


def training_steps(m, items, device="cpu") -> None:
    """Forward + backward of each item with every weight getting a gradient (no optimizer)."""
    for p in m.model.parameters():
        p.requires_grad_(True)
    for it in items:
        ids, _, _ = pad_batch([it], 0, device)
        labels = ids.clone()
        labels[0, :it.encoded.n_prompt] = -100
        m.model(input_ids=ids, labels=labels).loss.backward()
        m.model.zero_grad(set_to_none=True)
    for p in m.model.parameters():
        p.requires_grad_(False)


def time_training(m, items) -> float:
    """Seconds per item of ``training_steps``."""
    start = time.perf_counter()
    training_steps(m, items)
    return (time.perf_counter() - start) / len(items)
