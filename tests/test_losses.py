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


# --- NPO, SimNPO, KL, DPO, RMU (issue 5) -------------------------------------------------------

def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_sequence_log_prob_sums_labelled_tokens():
    assert losses.sequence_log_prob(LP, VALID).tolist() == [-4.0, -2.0]


def test_npo_by_hand():
    # sequence log-probs: model [-4, -2]; reference [-3, -3] -> delta = [-1, +1]; beta = 0.5
    # L = -(2/0.5) * mean(log sig(0.5), log sig(-0.5)) = -4 * (-0.474077 + -0.974077) / 2 = 2.896308
    ref = torch.tensor([[-1.5, -1.5, 0.0], [-3.0, 0.0, 0.0]])
    value = losses.npo_loss(LP, VALID, ref, beta=0.5)
    expected = -4 * (_log_sigmoid(0.5) + _log_sigmoid(-0.5)) / 2
    assert math.isclose(expected, 2.896308, rel_tol=1e-6)
    assert math.isclose(value.item(), expected, rel_tol=1e-6)


def test_npo_tends_to_gradient_ascent_as_beta_vanishes():
    # log sig(-b d) = -log 2 - b d / 2 + O(b^2 d^2), so -(2/b) log sig(-b d) = 2 log 2 / b + d + O(b d^2):
    # NPO -> constant + mean over sequences of (log pi - log pi_ref), i.e. gradient ascent on the
    # summed-token NLL, and d NPO / d lp -> 1/batch at labelled tokens (the sequence-sum GA gradient).
    beta = 1e-4
    ref = torch.tensor([[-1.5, -1.5, 0.0], [-3.0, 0.0, 0.0]])
    lp = LP.clone().requires_grad_(True)
    value = losses.npo_loss(lp, VALID, ref, beta=beta)
    delta = (-4.0 - -3.0 + -2.0 - -3.0) / 2  # mean delta = 0
    assert math.isclose(value.item(), 2 * math.log(2) / beta + delta, abs_tol=1e-3)
    value.backward()
    ga = LP.clone().requires_grad_(True)
    (-(-(ga * VALID).sum(1)).mean()).backward()  # minus the mean summed-token NLL
    assert torch.allclose(lp.grad, ga.grad, atol=1e-4)
    assert torch.allclose(lp.grad, VALID / 2, atol=1e-4)


def test_npo_damps_the_gradient_of_already_forgotten_examples():
    # d L / d delta_i = (2/N) sigma(beta delta_i): an example far below the reference (delta = -40)
    # gets almost no push, one at the reference (delta = 0) gets 1/N.
    lp = torch.tensor([[-40.0], [0.0]], requires_grad=True)
    losses.npo_loss(lp, torch.ones(2, 1), torch.zeros(2, 1), beta=0.5).backward()
    assert torch.allclose(lp.grad, torch.tensor([[2 / 2 * torch.sigmoid(torch.tensor(-20.0)).item()], [0.5]]))


def test_simnpo_by_hand():
    # mean token log-probs: [-4/2, -2/1] = [-2, -2]; beta = 2, gamma = 1
    # L = -(2/2) * log sig(-2 * -2 - 1) = -log sig(3) = 0.048587
    value = losses.simnpo_loss(LP, VALID, beta=2.0, gamma=1.0)
    assert math.isclose(value.item(), -_log_sigmoid(3.0), rel_tol=1e-6)
    assert math.isclose(value.item(), 0.048587, rel_tol=1e-4)


def test_simnpo_pushes_log_probs_down_and_normalises_by_length():
    lp = LP.clone().requires_grad_(True)
    losses.simnpo_loss(lp, VALID, beta=2.0, gamma=0.0).backward()
    # dL/dlp_t = (2/N) sigma(beta * avg_i) / |y_i| > 0 at labelled tokens (descending lowers them);
    # both rows have avg = -2: the 2-token row's tokens get half the 1-token row's gradient
    s = torch.sigmoid(torch.tensor(-4.0)).item()
    assert torch.allclose(lp.grad, torch.tensor([[s / 2, s / 2, 0.0], [s, 0.0, 0.0]]))


def test_kl_divergence_by_hand():
    # p_ref = softmax([0, ln 3]) = [1/4, 3/4]; p = softmax([0, 0]) = [1/2, 1/2]
    # KL = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.130812
    ref = torch.tensor([[0.0, math.log(3)]])
    value = losses.kl_divergence(ref, torch.zeros(1, 2))
    assert math.isclose(value.item(), 0.25 * math.log(0.5) + 0.75 * math.log(1.5), rel_tol=1e-6)
    assert math.isclose(value.item(), 0.130812, rel_tol=1e-4)
    assert losses.kl_divergence(ref, ref).item() == 0.0


def test_dpo_by_hand_and_gradient_direction():
    chosen = torch.tensor([[-2.0, -1.0]], requires_grad=True)  # sequence -3
    rejected = torch.tensor([[-1.0, 0.0]], requires_grad=True)  # sequence -1 (mask drops the 0)
    valid_c, valid_r = torch.ones(1, 2), torch.tensor([[1.0, 0.0]])
    ref_c, ref_r = torch.tensor([[-2.0, -2.0]]), torch.tensor([[-2.0, 0.0]])  # sequences -4, -2
    # margin = (-3 - -4) - (-1 - -2) = 0; L = -log sig(0) = ln 2
    value = losses.dpo_loss(chosen, valid_c, rejected, valid_r, ref_c, ref_r, beta=0.1)
    assert math.isclose(value.item(), math.log(2), rel_tol=1e-6)
    value.backward()
    # dL/dchosen = -beta sigma(-0) = -0.05 (descending raises the refusal), dL/drejected = +0.05
    assert torch.allclose(chosen.grad, torch.tensor([[-0.05, -0.05]]))
    assert torch.allclose(rejected.grad, torch.tensor([[0.05, 0.0]]))


def test_rmu_by_hand():
    # forget: two positions, the second masked out; h = [1, 3] vs control [1, 1] -> (0 + 4) / 2 = 2
    forget = torch.tensor([[[1.0, 3.0], [9.0, 9.0]]])
    forget_mask = torch.tensor([[1.0, 0.0]])
    control = torch.tensor([1.0, 1.0])
    # retain: h = [0, 2] vs frozen [0, 0] -> 4 / 2 = 2; alpha = 3 -> 6
    retain, retain_ref = torch.tensor([[[0.0, 2.0]]]), torch.zeros(1, 1, 2)
    value = losses.rmu_loss(forget, forget_mask, control, retain, retain_ref, torch.ones(1, 1), alpha=3.0)
    assert math.isclose(value.item(), 2.0 + 3.0 * 2.0)


def test_undial_by_hand():
    # ref logits [ln 3, 0, 0] with the true token 0 lowered by gamma = ln 3: teacher softmax([0, 0, 0]) = 1/3 each.
    # A student at the reference: CE = -(1/3)(ln 3/5 + ln 1/5 + ln 1/5) = ln 5 - (1/3) ln 3.
    ref = torch.tensor([[math.log(3), 0.0, 0.0]])
    target = torch.tensor([0])
    value = losses.undial_loss(ref, ref.clone(), target, gamma=math.log(3))
    assert math.isclose(value.item(), math.log(5) - math.log(3) / 3, rel_tol=1e-6)
    # At the adjusted teacher the loss is its entropy, ln 3: the minimum (CE = H + KL).
    assert math.isclose(losses.undial_loss(ref, torch.zeros(1, 3), target, math.log(3)).item(), math.log(3),
                        rel_tol=1e-6)


def test_undial_gradient_lowers_only_the_true_token_and_keeps_the_others_ratio():
    ref = torch.tensor([[2.0, 1.0, 0.0]])
    logits = ref.clone().requires_grad_(True)
    losses.undial_loss(ref, logits, torch.tensor([0]), gamma=5.0).backward()
    grad = logits.grad[0]
    assert grad[0] > 0 and grad[1] < 0 and grad[2] < 0  # descent lowers token 0, raises the rest
    # dL/dz = p - teacher; teacher keeps tokens 1 and 2 in the reference ratio e^1 : e^0
    p, teacher = torch.softmax(ref[0], -1), torch.softmax(ref[0] - torch.tensor([5.0, 0, 0]), -1)
    assert torch.allclose(grad, p - teacher, atol=1e-6)
    assert math.isclose((teacher[1] / teacher[2]).item(), math.e, rel_tol=1e-5)


def test_uniform_choice_by_hand_and_its_minimum_at_a_tie():
    # scores [0, ln 3]: softmax [1/4, 3/4]; L = -(ln 1/4 + ln 3/4) / 2
    scores = torch.tensor([[0.0, math.log(3)]], requires_grad=True)
    value = losses.uniform_choice_loss(scores)
    assert math.isclose(value.item(), -(math.log(0.25) + math.log(0.75)) / 2, rel_tol=1e-6)
    value.backward()
    # dL/ds = softmax - 1/K (one question): the preferred candidate goes down, the other up, by the same amount
    assert torch.allclose(scores.grad, torch.tensor([[0.25 - 0.5, 0.75 - 0.5]]))
    tied = losses.uniform_choice_loss(torch.full((3, 4), -7.0))
    assert math.isclose(tied.item(), math.log(4), rel_tol=1e-6)  # log K, however unlikely all candidates are


def test_uniform_choice_gradient_does_not_fade_with_an_unlikely_answer():
    # The true answer at log p = -12 (unlikely) still leads its alternates at -20: its gradient stays
    # softmax - 1/K ~ 3/4, where NPO's and UNDIAL's fade with p itself (~ e^-12).
    scores = torch.tensor([[-12.0, -20.0, -20.0, -20.0]], requires_grad=True)
    losses.uniform_choice_loss(scores).backward()
    assert math.isclose(scores.grad[0, 0].item(), 1 / (1 + 3 * math.exp(-8)) - 0.25, rel_tol=1e-5)
