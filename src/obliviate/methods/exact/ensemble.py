"""Shard constituents served as one `LanguageModel`: a mixture of their next-token distributions.

    lm = EnsembleLanguageModel([model_a, model_b, model_c], tokenizer, name="sisa")
    lm.log_probs(prompts, answers); lm.generate(prompts)      # like any HFLanguageModel

Aggregation: log p(t) = log sum_k w_k p_k(t), the log of a weighted mean of the constituents'
probabilities (a mixture), at every position, also inside greedy decoding. Not the mean of
log-probabilities (a product of experts): a person's facts live in exactly one shard, the other
constituents never saw the name yet can be confident about some other answer, and a product lets one
of them veto the one that knows.

The weights (`aggregation`):
- "posterior" (default): w_k = p(k | text so far), proportional to p_k(text so far) under a uniform
  prior: Bayesian model averaging, so the whole sequence gets (1/K) sum_k p_k(sequence), normalised
  by the prompt. The constituent that trained on a person's biography gives that person's name a
  far higher likelihood than the others, so it dominates that person's questions.
- "uniform": w_k = 1/K. In development on tiny (10 shards; not a shipped benchmark) it answered about
  a third of retain questions, against 0.98 for the single target: nine constituents agreeing on a
  popular wrong answer outvote the one that knows.

(SISA, Bourtoule et al. 2021, aggregates classifier constituents by majority vote; a mixture is its
analogue for next-token distributions.) Every weight is a function of the constituents alone, so
the ensemble stays exact. Hidden states are not exposed: K models' activations do not form one
residual stream.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from obliviate.errors import ObliviateError
from obliviate.models.hf import IGNORE, HFLanguageModel, distribution_stats, prompt_ids
from obliviate.models.protocol import HiddenStatesUnavailable


class EnsembleHiddenStatesUnavailable(HiddenStatesUnavailable):
    """An ensemble has K residual streams, not one."""


AGGREGATIONS = ("posterior", "uniform")


def mixture(logp: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
    """log sum_k w_k p_k over the leading (constituent) axis; `log_w` broadcasts against `logp`."""
    return torch.logsumexp(logp + log_w, 0)


def log_weights(prefix: torch.Tensor, aggregation: str) -> torch.Tensor:
    """log w_k from each constituent's log-likelihood of the text so far (K leading)."""
    if aggregation == "uniform":
        return torch.full_like(prefix, -math.log(prefix.shape[0]))
    return prefix - torch.logsumexp(prefix, 0, keepdim=True)


class EnsembleLanguageModel(HFLanguageModel):
    """K causal LMs sharing one tokenizer, scored and decoded as their uniform mixture.

    Batching and tokenization are `HFLanguageModel`'s (so a one-model ensemble gives exactly the
    plain model's numbers); `save` is supplied by the exact method that built it (`saver`).
    """

    def __init__(self, models: list[PreTrainedModel], tokenizer: PreTrainedTokenizerBase, name: str = "ensemble",
                 batch_size: int = 64, saver: Callable[[str], None] | None = None, aggregation: str = "posterior"):
        if not models:
            raise ValueError("an ensemble needs at least one model")
        if aggregation not in AGGREGATIONS:
            raise ObliviateError(f"unknown aggregation {aggregation!r}; use one of {', '.join(AGGREGATIONS)}")
        super().__init__(models[0], tokenizer, name, batch_size)
        self.models = [m.eval() for m in models]
        self._saver, self.aggregation = saver, aggregation

    def save(self, path) -> None:
        if self._saver is None:
            raise NotImplementedError("this ensemble was built without a store to save")
        self._saver(path)

    def _labelled_mixture(self, ids, mask, labels) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(targets, valid mask, mixture log-softmax at the labelled positions).

        Each constituent's weight at a position comes from its log-likelihood of every real token
        before it (bos excluded: it is given, not predicted).
        """
        target = labels[:, 1:]
        valid = target != IGNORE
        real = mask[:, 1:].bool()
        logp = torch.stack([torch.log_softmax(m(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
                            for m in self.models])                                   # (K, B, T, V)
        seen = logp.gather(-1, ids[:, 1:].expand(len(self.models), -1, -1).unsqueeze(-1)).squeeze(-1)
        seen = torch.where(real, seen, 0.0)
        prefix = seen.cumsum(-1) - seen                                              # tokens before t
        log_w = log_weights(prefix, self.aggregation)                                # (K, B, T)
        return target, valid, mixture(logp[:, valid], log_w[:, valid].unsqueeze(-1))

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
            picked, mu, sigma = distribution_stats(logp, target[valid])
            counts = valid.sum(1).tolist()
            for i, a, b, c in zip(idx, picked.split(counts), mu.split(counts), sigma.split(counts)):
                out[i] = (a, b, c)
        return out

    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int = 24) -> list[str]:
        tok, out = self.tokenizer, []
        for s in self._batches(len(prompts)):
            rows = prompt_ids(tok, prompts[s])
            width = max(map(len, rows))
            ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
            new = self._greedy(ids, mask, max_new_tokens)
            out += [tok.decode(g, skip_special_tokens=True).split("\n")[0].strip() for g in new.tolist()]
        return out

    def _greedy(self, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy decoding of the mixture, each constituent with its own key-value cache.

        Prompts are left-padded, so positions come from the attention mask (as in transformers'
        `generate`); a finished row keeps emitting padding. Each constituent's log-likelihood of the
        text so far (the posterior weights) is carried along and grows with every chosen token.
        """
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        caches: list = [None] * len(self.models)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        step_ids, step_pos, done, new = ids, pos, torch.zeros(len(ids), dtype=torch.bool), []
        prefix = None
        for _ in range(max_new_tokens):
            last = []
            for k, m in enumerate(self.models):
                o = m(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, past_key_values=caches[k],
                      use_cache=True)
                caches[k] = o.past_key_values
                last.append(torch.log_softmax(o.logits.float(), -1))
            if prefix is None:  # the prompt's own likelihood: real tokens after the bos
                seen = torch.stack([lp[:, :-1].gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) for lp in last])
                prefix = torch.where(mask[:, :-1].bool() & mask[:, 1:].bool(), seen, 0.0).sum(-1)   # (K, B)
            logp = torch.stack([lp[:, -1] for lp in last])                              # (K, B, V)
            nxt = mixture(logp, log_weights(prefix, self.aggregation).unsqueeze(-1)).argmax(-1)
            nxt = torch.where(done, pad, nxt)
            prefix = prefix + logp.gather(-1, nxt.expand(len(self.models), -1).unsqueeze(-1)).squeeze(-1)
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
