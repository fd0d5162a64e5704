"""What the benchmarks time layergrad against, with plain transformers only (no layergrad code, so the
same baseline serves every commit): the paper's formatting of a sample and a fine-tuning step on it."""

import time

import torch

STYLES = {"none": "gsm8k/none", "simplified": "gsm8k/simplified", "detailed": "gsm8k/detailed"}
SYSTEM_PROMPT = "You are a helpful assistant."  # the original script's (docs/guide/how-it-works.md, "The measurement")


def paper_tokens(tokenizer, prompt: str, response: str, max_length: int = 1024) -> tuple[list[int], int]:
    """(token ids, first response position) as the original script builds them."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + response
    ids = tokenizer.encode(text, truncation=True, max_length=max_length)
    return ids, len(tokenizer.encode(text[:text.rfind(response)]))


def training_steps(model, encoded) -> None:
    """Forward + backward of each (ids, boundary) with every weight getting a gradient (no optimizer)."""
    saved = [(p, p.requires_grad) for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(True)
    for ids, boundary in encoded:
        ids = torch.tensor([ids])
        labels = ids.clone()
        labels[0, :boundary] = -100
        model(input_ids=ids, labels=labels).loss.backward()
        model.zero_grad(set_to_none=True)
    for p, flag in saved:
        p.requires_grad_(flag)


def time_training(model, tokenizer, samples) -> float:
    """Seconds per sample of ``training_steps`` on the samples' paper formatting."""
    encoded = [paper_tokens(tokenizer, s.prompt, s.response) for s in samples]
    start = time.perf_counter()
    training_steps(model, encoded)
    return (time.perf_counter() - start) / len(samples)
