"""The oracle: one sample at a time, plain autograd on the weights (the loss as transformers computes
it from ``labels``), fp64 SVD of param.grad. Only the choice of weights (their names) comes from
layergrad; the loss, the masking and the gradients do not."""

import torch

from layergrad.engine.projections import select_targets


def oracle_gradients(m, item, modules="all"):
    """[(target, G fp64 as out x in)] and the loss of one encoded sample, by autograd."""
    model = m.model
    targets = select_targets(model, modules)
    params = dict(model.named_parameters())
    saved = [(p, p.requires_grad) for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
        p.grad = None
    for t in targets:
        params[t.weight].requires_grad_(True)
    try:
        ids = torch.tensor([item.encoded.input_ids], device=next(model.parameters()).device)
        labels = ids.clone()
        labels[0, :max(item.encoded.n_prompt, 1)] = -100  # the response tokens are the targets
        loss = model(input_ids=ids, labels=labels).loss  # mean cross-entropy over them
        loss.backward()
        out = []
        for t in targets:
            g = params[t.weight].grad.double()
            if t.expert is not None:  # one expert's slice of the 3-D parameter (its orientation: same σ)
                g = g[t.expert]
            if type(t.module).__name__ == "Conv1D":
                g = g.T
            if t.rows is not None:  # the fused block's rows (the layout's own test checks them against the model)
                g = torch.cat([g[a:b] for a, b in t.rows])
            out.append((t, g))
        return out, float(loss.detach())
    finally:
        for p, flag in saved:
            p.grad = None
            p.requires_grad_(flag)


def oracle_singular_values(m, item, modules="all", layers=None):
    """{param: σ (fp64, descending)} and the loss of one encoded sample; ``layers``: only those
    (the fp64 SVDs of a real model's every layer cost minutes)."""
    grads, loss = oracle_gradients(m, item, modules)
    return {t.param: tall_svdvals(g) for t, g in grads if layers is None or t.layer in layers}, loss


def tall_svdvals(g):
    """σ of g by LAPACK's SVD of its tall orientation (the same values; 2x faster than a wide one)."""
    return torch.linalg.svdvals(g if g.shape[0] >= g.shape[1] else g.T)


def autograd_gradients(m, item, modules="all"):
    """{(kind, layer): G fp64} of one encoded sample."""
    grads, _ = oracle_gradients(m, item, modules)
    return {(t.kind, t.layer): g for t, g in grads}
