"""The baseline both benchmarks time layergrad against: a plain fine-tuning step."""

from layergrad.engine.batching import pad_batch


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
