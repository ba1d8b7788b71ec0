"""The one interface every evaluation and attack reads: a `LanguageModel`.

A plain Hugging Face model, a LoRA model, a sharded ensemble and a guarded (inference-time) model
all implement it, so metrics are written once and apply to every unlearning method.

Optional capabilities sit outside the protocol, so black-box models still satisfy it:

- `token_stats(prompts, answers)` (see `SupportsTokenStats`): per answer token, log p of the actual
  token and the mean / standard deviation of log p under the model's own next-token distribution.
  Min-K%++ membership inference needs it; models lacking it (black-box guards, API models) get
  Min-K%++ reported as "n/a". Metrics test for it with `hasattr(lm, "token_stats")`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


class HiddenStatesUnavailable(RuntimeError):
    """Raised by black-box models (e.g. guards) that cannot expose activations."""


@runtime_checkable
class LanguageModel(Protocol):
    name: str

    def log_probs(self, prompts: list[str], answers: list[str]) -> list[torch.Tensor]:
        """Per-token log-probabilities of each answer given its prompt (1-D tensor per pair)."""

    def generate(self, prompts: list[str], max_new_tokens: int = 24) -> list[str]:
        """Greedy continuations of each prompt, stripped, cut at end-of-sequence."""

    def hidden_states(self, texts: list[str]) -> list[torch.Tensor]:
        """Per text, a (layers + 1, tokens, hidden) tensor; raises HiddenStatesUnavailable."""

    # Optional capability, not part of the protocol check: `token_stats(prompts, answers)` gives, per
    # answer token, (log p, mean and std of log p under the next-token distribution). Models without
    # it (black-box guards) make Min-K%++ "n/a"; metrics test `hasattr(lm, "token_stats")`.


@runtime_checkable
class SupportsTokenStats(Protocol):
    """Optional capability: next-token distribution statistics (needed by Min-K%++ only)."""

    def token_stats(self, prompts: list[str], answers: list[str]
                    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per pair, three 1-D tensors over the answer tokens (the positions of `log_probs`, eos
        excluded): log p of the actual token, mu_t = E_{z~p_t}[log p_t(z)] and
        sigma_t = sqrt(E_{z~p_t}[(log p_t(z))^2] - mu_t^2), with p_t the model's next-token
        distribution at that position (Min-K%++, Zhang et al. 2024, arXiv 2404.02936)."""
