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
