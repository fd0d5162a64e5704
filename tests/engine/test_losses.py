"""The scored cross-entropy's hand-written backward against autograd's log_softmax + nll."""

import pytest
import torch
import torch.nn.functional as F

from layergrad.engine.losses import response_losses


def autograd_losses(logits, ids, scored):
    token_loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), ids[:, 1:].flatten(),
                                 reduction="none").view(scored.shape)
    weights = scored.float()
    return (token_loss * weights).sum(1) / weights.sum(1)


@pytest.mark.parametrize("incoming", ["ones", "signed"])
def test_scored_cross_entropy_equals_autograd(incoming):
    torch.manual_seed(0)
    batch, length, vocab = 3, 17, 101
    logits = (3 * torch.randn(batch, length, vocab)).requires_grad_()
    ids = torch.randint(0, vocab, (batch, length))
    scored = torch.rand(batch, length - 1) > 0.4
    scored[:, 3] = True
    grad = torch.ones(batch) if incoming == "ones" else torch.tensor([0.7, -1.3, 0.0])
    expected = autograd_losses(logits, ids, scored)
    (expected_grad,) = torch.autograd.grad((expected * grad).sum(), logits)
    got = response_losses(logits, ids, scored)
    (got_grad,) = torch.autograd.grad((got * grad).sum(), logits)
    # fp32 rounding of two orders of the same sums: stated tolerances, absolute for the gradient (entries near 0)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(got_grad, expected_grad, rtol=0, atol=1e-6 * expected_grad.abs().max().item())
    # positions outside the scored tokens (and the last, which predicts nothing) get exact zeros
    counted = torch.cat([scored, torch.zeros(batch, 1, dtype=torch.bool)], 1) & (grad != 0)[:, None]
    assert torch.all(got_grad[~counted] == 0)
