"""Shard constituents served as one `LanguageModel`: a mixture of their next-token distributions.

    lm = EnsembleLanguageModel([model_a, model_b, model_c], tokenizer, name="sisa")
    lm.log_probs(prompts, answers); lm.generate(prompts)      # like any HFLanguageModel

Aggregation: log p(t) = log (1/K) sum_k p_k(t), the log of the mean probability (a uniform
mixture), at every position, also inside greedy decoding. Why not the mean of log-probabilities
(a product of experts)? A person's facts live in exactly one shard: only that constituent knows
them, and the others, which never saw the name, can still be confident about some other answer. A
mixture guarantees the knowing constituent at least 1/K of its probability; a product lets one
confidently wrong constituent veto it. (SISA, Bourtoule et al. 2021, aggregates classifier
constituents by majority vote; a mixture is its analogue for next-token distributions.)

Hidden states are not exposed: K models' activations do not form one residual stream.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from obliviate.models.hf import IGNORE, HFLanguageModel
from obliviate.models.protocol import HiddenStatesUnavailable


class EnsembleHiddenStatesUnavailable(HiddenStatesUnavailable):
    """An ensemble has K residual streams, not one."""


def mixture_log_softmax(logits: list[torch.Tensor]) -> torch.Tensor:
    """log of the mean of the softmaxes of K same-shaped logit tensors."""
    stacked = torch.stack([torch.log_softmax(x.float(), -1) for x in logits])
    return torch.logsumexp(stacked, 0) - math.log(len(logits))


class EnsembleLanguageModel(HFLanguageModel):
    """K causal LMs sharing one tokenizer, scored and decoded as their uniform mixture.

    Batching and tokenization are `HFLanguageModel`'s (so a one-model ensemble gives exactly the
    plain model's numbers); `save` is supplied by the exact method that built it (`saver`).
    """

    def __init__(self, models: list[PreTrainedModel], tokenizer: PreTrainedTokenizerBase, name: str = "ensemble",
                 batch_size: int = 64, saver: Callable[[str], None] | None = None):
        if not models:
            raise ValueError("an ensemble needs at least one model")
        super().__init__(models[0], tokenizer, name, batch_size)
        self.models = [m.eval() for m in models]
        self._saver = saver

    def save(self, path) -> None:
        if self._saver is None:
            raise NotImplementedError("this ensemble was built without a store to save")
        self._saver(path)

    def _labelled_mixture(self, ids, mask, labels) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(targets, valid mask, mixture log-softmax at the labelled positions)."""
        target = labels[:, 1:]
        valid = target != IGNORE
        logits = []
        for m in self.models:
            hidden = m.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
            logits.append(m.get_output_embeddings()(hidden[valid]))
        return target, valid, mixture_log_softmax(logits)

    @torch.no_grad()
    def log_probs(self, prompts: list[str], answers: list[str]) -> list[torch.Tensor]:
        out: list[torch.Tensor] = [torch.empty(0)] * len(prompts)
        for idx, ids, mask, labels in self.scoring_batches(prompts, answers):
            target, valid, logp = self._labelled_mixture(ids, mask, labels)
            picked = logp.gather(-1, target[valid].unsqueeze(-1)).squeeze(-1)
            for i, row in zip(idx, picked.split(valid.sum(1).tolist())):
                out[i] = row
        return out

    @torch.no_grad()
    def token_stats(self, prompts: list[str], answers: list[str]
                    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Min-K%++ statistics under the mixture's next-token distribution (see `HFLanguageModel`)."""
        out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = [(torch.empty(0),) * 3] * len(prompts)
        for idx, ids, mask, labels in self.scoring_batches(prompts, answers):
            target, valid, logp = self._labelled_mixture(ids, mask, labels)
            p = logp.exp()
            picked = logp.gather(-1, target[valid].unsqueeze(-1)).squeeze(-1)
            mu = torch.where(p > 0, p * logp, 0.0).sum(-1)
            sigma = torch.where(p > 0, p * (logp - mu.unsqueeze(-1)).square(), 0.0).sum(-1).sqrt()
            counts = valid.sum(1).tolist()
            for i, a, b, c in zip(idx, picked.split(counts), mu.split(counts), sigma.split(counts)):
                out[i] = (a, b, c)
        return out

    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int = 24) -> list[str]:
        tok, out = self.tokenizer, []
        for s in self._batches(len(prompts)):
            rows = [[tok.bos_token_id] + tok.encode(p, add_special_tokens=False) for p in prompts[s]]
            width = max(map(len, rows))
            ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
            new = self._greedy(ids, mask, max_new_tokens)
            out += [tok.decode(g, skip_special_tokens=True).split("\n")[0].strip() for g in new.tolist()]
        return out

    def _greedy(self, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy decoding of the mixture, each constituent with its own key-value cache.

        Prompts are left-padded, so positions come from the attention mask (as in transformers'
        `generate`); a finished row keeps emitting padding.
        """
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        caches: list = [None] * len(self.models)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        step_ids, step_pos, done, new = ids, pos, torch.zeros(len(ids), dtype=torch.bool), []
        for _ in range(max_new_tokens):
            logits = []
            for k, m in enumerate(self.models):
                o = m(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, past_key_values=caches[k],
                      use_cache=True)
                caches[k] = o.past_key_values
                logits.append(o.logits[:, -1])
            nxt = torch.where(done, pad, mixture_log_softmax(logits).argmax(-1))
            new.append(nxt)
            done |= nxt == eos
            if done.all():
                break
            mask = torch.cat([mask, torch.ones(len(ids), 1, dtype=mask.dtype)], 1)
            step_ids, step_pos = nxt.unsqueeze(1), step_pos[:, -1:] + 1
        return torch.stack(new, 1) if new else ids[:, :0]

    def hidden_states(self, texts: list[str]) -> list[torch.Tensor]:
        raise EnsembleHiddenStatesUnavailable(
            f"n/a: {self.name} is an ensemble of {len(self.models)} models, whose activations do not form one "
            "residual stream")
