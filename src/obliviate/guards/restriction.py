"""GUARD's generation-time restriction as a `transformers` LogitsProcessor.

For each flagged row, every candidate token that would continue a forbidden answer's token sequence
is penalised: with g the tokens generated so far and s a forbidden sequence, s[k] is penalised when
g ends with s[:k] (k = 0 included, so a forbidden answer cannot start). While a match is partial
(k >= 1), the semantic check also embeds the continuation "matched tokens + candidate" for the top
candidates and penalises those whose cosine similarity to a forbidden answer reaches a threshold:
a paraphrase or respelling of the answer is caught without running the embedder at every step.

    proc = ForbiddenContinuations([[[5, 6, 7]]], starts=[2], penalty=20.0)
    scores = proc(input_ids, scores)   # row 0: token 5 always, token 6 after ...5, token 7 after ...5 6
"""

from __future__ import annotations

from typing import Callable

import torch
from transformers import LogitsProcessor

# (row, generated tokens of the partial match, candidate token ids) -> candidates to penalise
SemanticCheck = Callable[[int, list[int], list[int]], list[int]]


class ForbiddenContinuations(LogitsProcessor):
    """Penalise forbidden continuations per row; rows with no forbidden sequences are untouched.

    forbidden[row] holds that row's token sequences; starts[row] is the index in `input_ids` where
    the row's generated (or scored) tokens begin.
    """

    def __init__(self, forbidden: list[list[list[int]]], starts: list[int], penalty: float,
                 semantic: SemanticCheck | None = None, semantic_candidates: int = 5):
        if len(forbidden) != len(starts):
            raise ValueError(f"{len(forbidden)} rows of forbidden sequences but {len(starts)} start positions")
        self.forbidden, self.starts, self.penalty = forbidden, starts, penalty
        self.semantic, self.semantic_candidates = semantic, semantic_candidates

    def blocked(self, row: int, generated: list[int]) -> tuple[set[int], int]:
        """(tokens that would continue a forbidden sequence, length of the longest partial match)."""
        tokens, longest = set(), 0
        for seq in self.forbidden[row]:
            for k in range(min(len(seq) - 1, len(generated)), -1, -1):
                if k == 0 or generated[-k:] == seq[:k]:
                    tokens.add(seq[k])
                    longest = max(longest, k)
        return tokens, longest

    def restrict(self, row: int, generated: list[int], scores: torch.Tensor) -> torch.Tensor:
        """Row `row`'s next-token scores (1-D) after `generated`, with forbidden continuations penalised."""
        if not self.forbidden[row]:
            return scores
        scores = scores.clone()
        tokens, longest = self.blocked(row, generated)
        if tokens:
            scores[list(tokens)] -= self.penalty
        if self.semantic is not None and longest > 0:
            top = [t for t in scores.topk(self.semantic_candidates).indices.tolist() if t not in tokens]
            hits = self.semantic(row, generated[len(generated) - longest:], top) if top else []
            if hits:
                scores[hits] -= self.penalty
        return scores

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = [self.restrict(row, input_ids[row, self.starts[row]:].tolist(), scores[row])
                for row in range(scores.shape[0])]
        return torch.stack(rows)
