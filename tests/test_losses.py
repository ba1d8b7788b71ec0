import math

import torch

from obliviate.methods import losses

# Two sequences: the first has two labelled tokens, the second one (the rest is padding).
LP = torch.tensor([[-1.0, -3.0, 0.0], [-2.0, 0.0, 0.0]])
VALID = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def test_mean_nll_by_hand():
    # (1 + 3 + 2) / 3 labelled tokens
    assert math.isclose(losses.mean_nll(LP, VALID).item(), 2.0)


def test_gradient_ascent_is_negated_nll():
    assert math.isclose(losses.gradient_ascent(LP, VALID).item(), -2.0)


def test_gradient_difference_by_hand():
    retain_lp = torch.tensor([[-0.5, -0.5]])
    retain_valid = torch.ones(1, 2)
    # -2.0 (forget) + 3 * 0.5 (retain)
    value = losses.gradient_difference(LP, VALID, retain_lp, retain_valid, retain_weight=3.0)
    assert math.isclose(value.item(), -0.5)


def test_gradient_ascent_gradient_pushes_log_probs_down():
    lp = LP.clone().requires_grad_(True)
    losses.gradient_ascent(lp, VALID).backward()
    # d(-mean nll)/d lp = +1/3 at labelled positions: minimising the loss lowers log-probs
    assert torch.allclose(lp.grad, VALID / 3)
