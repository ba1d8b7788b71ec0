"""Unlearning losses as pure functions of per-token log-probabilities.

Every function takes `lp` (log p of each labelled token, zero elsewhere) and `valid` (1 where a
token is labelled), both shaped (batch, tokens), as returned by `models.hf.token_log_probs`.
"""

from __future__ import annotations

import torch


def mean_nll(lp: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over all labelled tokens of the batch."""
    return -(lp * valid).sum() / valid.sum().clamp(min=1)


def gradient_ascent(forget_lp: torch.Tensor, forget_valid: torch.Tensor) -> torch.Tensor:
    """L = -NLL(forget): minimising it raises the forget set's loss (Jang et al. 2023)."""
    return -mean_nll(forget_lp, forget_valid)


def gradient_difference(forget_lp: torch.Tensor, forget_valid: torch.Tensor, retain_lp: torch.Tensor,
                        retain_valid: torch.Tensor, retain_weight: float = 1.0) -> torch.Tensor:
    """L = -NLL(forget) + w * NLL(retain) (Liu et al. 2022, "Continual learning and private unlearning")."""
    return gradient_ascent(forget_lp, forget_valid) + retain_weight * mean_nll(retain_lp, retain_valid)


def sequence_log_prob(lp: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """log π(y|x) per sequence: the sum of its labelled tokens' log-probs, shape (batch,)."""
    return (lp * valid).sum(1)


def kl_divergence(ref_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean over positions of KL(p_ref ‖ p) = Σ_v p_ref(v) · (log p_ref(v) − log p(v)).

    Both are (positions, vocab) next-token logits at the same positions (e.g. the labelled ones of
    a retain batch). The reference-weighted direction is TOFU's "KL" retain term (Maini et al.
    2024, arXiv 2401.06121): it pulls the model back wherever the reference put probability.
    """
    ref_logp = torch.log_softmax(ref_logits.float(), -1)
    logp = torch.log_softmax(logits.float(), -1)
    per_position = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return per_position.mean() if per_position.numel() else logits.sum() * 0.0


def npo_loss(lp: torch.Tensor, valid: torch.Tensor, ref_lp: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """L = −(2/β) · mean_i log σ(−β · (log π_θ(y_i|x_i) − log π_ref(y_i|x_i))), sequence log-probs.

    Negative Preference Optimization (Zhang et al. 2024, arXiv 2404.05868, eq. 3). With
    Δ = log π_θ − log π_ref, log σ(−βΔ) = −log 2 − βΔ/2 + O(β²Δ²), so as β → 0
    L → (2 log 2)/β + mean Δ: a constant plus the summed-token gradient ascent loss, with the
    same gradient. For β > 0 each example's gradient is damped by 2σ(βΔ) once it is forgotten
    (Δ ≪ 0), which keeps the loss bounded below and slows collapse.
    """
    delta = sequence_log_prob(lp, valid) - sequence_log_prob(ref_lp, valid)
    return -(2.0 / beta) * torch.nn.functional.logsigmoid(-beta * delta).mean()


def simnpo_loss(lp: torch.Tensor, valid: torch.Tensor, beta: float = 4.5, gamma: float = 0.0) -> torch.Tensor:
    """L = −(2/β) · mean_i log σ(−(β/|y_i|) · log π_θ(y_i|x_i) − γ).

    SimNPO (Fan et al. 2024, arXiv 2410.07163, eq. 4): NPO without a reference model, the sequence
    log-prob normalised by the answer length |y| (so long answers are not favoured) and a margin γ.
    """
    length = valid.sum(1).clamp(min=1)
    avg = sequence_log_prob(lp, valid) / length
    return -(2.0 / beta) * torch.nn.functional.logsigmoid(-beta * avg - gamma).mean()


def dpo_loss(chosen_lp: torch.Tensor, chosen_valid: torch.Tensor, rejected_lp: torch.Tensor,
             rejected_valid: torch.Tensor, ref_chosen_lp: torch.Tensor, ref_rejected_lp: torch.Tensor,
             beta: float = 0.1) -> torch.Tensor:
    """L = −mean_i log σ(β · [(log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x))]).

    Direct Preference Optimization (Rafailov et al. 2023, arXiv 2305.18290, eq. 7) with sequence
    log-probs; y_w is the preferred (chosen) answer, y_l the dispreferred (rejected) one. The
    reference log-probs share their policy counterparts' `valid` masks.
    """
    chosen = sequence_log_prob(chosen_lp, chosen_valid) - sequence_log_prob(ref_chosen_lp, chosen_valid)
    rejected = sequence_log_prob(rejected_lp, rejected_valid) - sequence_log_prob(ref_rejected_lp, rejected_valid)
    return -torch.nn.functional.logsigmoid(beta * (chosen - rejected)).mean()


def masked_mse(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where `mask` is 1 of ‖h − target‖² / d (element-wise MSE, d = width).

    `hidden` is (batch, tokens, d); `target` broadcasts to it; `mask` is (batch, tokens).
    """
    per_position = (hidden.float() - target.float()).square().mean(-1)
    return (per_position * mask).sum() / mask.sum().clamp(min=1)


def rmu_loss(forget_hidden: torch.Tensor, forget_mask: torch.Tensor, control: torch.Tensor,
             retain_hidden: torch.Tensor, retain_ref_hidden: torch.Tensor, retain_mask: torch.Tensor,
             alpha: float = 100.0) -> torch.Tensor:
    """L = MSE(h_ℓ(x_f), c·u) + α · MSE(h_ℓ(x_r), h_ℓ^frozen(x_r)), each a mean over masked positions.

    Representation Misdirection for Unlearning (Li et al. 2024, WMDP, arXiv 2403.03218, eqs. 1-2):
    `control` is c·u, a scaled fixed random unit vector of width d; the MSE is per element, as in
    the paper's code (the squared norm divided by d).
    """
    return (masked_mse(forget_hidden, control, forget_mask)
            + alpha * masked_mse(retain_hidden, retain_ref_hidden, retain_mask))


def undial_loss(ref_logits: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor,
                gamma: float = 10.0) -> torch.Tensor:
    """L = mean_t CE(softmax(z_ref,t − γ·e_{y_t}), softmax(z_θ,t)): distil toward the reference with the true token lowered.

    UNDIAL (Dong et al. 2024, arXiv 2402.10052, eq. 2-3): at each labelled position the frozen
    reference's logits z_ref have the true next token y_t's logit lowered by γ, and the model is
    trained toward that softmax. Every other token keeps its reference ratio to the rest, so the
    model is moved only as far as making y_t unlikely, and the target is fixed: the loss is bounded
    below by the target's entropy, unlike gradient ascent. `ref_logits` and `logits` are
    (positions, vocab) at the same labelled positions, `targets` their (positions,) label ids.
    """
    adjusted = ref_logits.float().clone()
    adjusted[torch.arange(len(targets), device=targets.device), targets] -= gamma
    teacher = torch.softmax(adjusted, -1)
    per_position = -(teacher * torch.log_softmax(logits.float(), -1)).sum(-1)
    return per_position.mean() if per_position.numel() else logits.sum() * 0.0


def uniform_choice_loss(scores: torch.Tensor) -> torch.Tensor:
    """L = −mean_{i,k} log softmax_k(s_i): cross-entropy from the uniform distribution to the model's
    distribution over each question's K candidate answers (true and alternates), scored by summed
    log-probability `scores` (batch, K) as multiple choice scores them.

    Its minimum, log K, is reached when every candidate is equally likely: the model can no longer
    tell the true answer from its alternates, which is what a multiple-choice probe at chance
    measures, and TOFU's truth ratio (Maini et al. 2024, arXiv 2401.06121) at 1. The gradient on
    the true answer's score is softmax − 1/K, so it does not vanish while the answer is still
    preferred, however unlikely it already is in absolute terms (where NPO's and KL-to-a-target's
    gradients fade); nor does it push the answer below its alternates.
    """
    return -torch.log_softmax(scores.float(), -1).mean()
