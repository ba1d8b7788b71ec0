"""The one interface every evaluation and attack reads: a `LanguageModel`.

A plain Hugging Face model, a LoRA model, a sharded ensemble and a guarded (inference-time) model
all implement it, so metrics are written once and apply to every unlearning method.
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
