"""GUARD: generation-time unlearning via adaptive restriction and detection (2025; "GUARD:
Generation-time LLM Unlearning via Adaptive Restriction and Detection").

For a prompt the classifier flags, the forbidden sequences are the answers of its top-k retrieved
targets (tokenized with and without a leading space, as written, lower-cased and capitalised); `restriction.ForbiddenContinuations`
penalises, at every step, tokens that would continue one of them (token matching) and, while a
match is partial, top candidates whose continuation embeds close to a forbidden answer (semantic
matching). Unflagged prompts run the target untouched.

`log_probs` of a flagged prompt scores each answer token under the same restricted distribution:
log_softmax of the penalised logits, with the answer's own prefix as the "generated" tokens, so
greedy generation is exactly the argmax of what `log_probs` scores. The penalty is finite (default
20 nats, about three times the target's top-1 margin on tiny) so NLL-based metrics stay finite.

    obliviate run --set methods=[guard] --set method_args.guard.penalty=30
"""

from __future__ import annotations

import torch
from pydantic import Field
from transformers import LogitsProcessorList

from obliviate.guards.base import GuardConfig, GuardedModel, GuardMethod
from obliviate.guards.classifier import Decision
from obliviate.guards.restriction import ForbiddenContinuations
from obliviate.models.hf import IGNORE, encode_rows, pad_rows, prompt_ids
from obliviate.registry import register_method


class GUARDConfig(GuardConfig):
    penalty: float = Field(20.0, gt=0, description="logit penalty on a forbidden continuation (nats)")
    semantic_threshold: float = Field(0.8, gt=0, le=1, description="cosine similarity to a forbidden answer "
                                      "at which a candidate continuation is penalised")
    semantic_candidates: int = Field(5, ge=0, description="top candidates embedded during a partial match "
                                     "(0 turns semantic matching off)")


class GUARDModel(GuardedModel):
    kind = "guard"
    config_class = GUARDConfig

    def _sequences(self, decision: Decision) -> tuple[list[list[int]], list[str]]:
        """(forbidden token sequences, forbidden answer texts) of the decision's retrieved targets."""
        cache = self.__dict__.setdefault("_seq_cache", {})
        answers = list(dict.fromkeys(a for t in decision.targets for a in
                                     self.classifier.store.targets[t].forbidden_answers))
        seqs = []
        for a in answers:
            if a not in cache:
                # each casing too: on SmolLM2 a guarded "Undine" came out as "undine", another token
                # path that matching the answer's own tokens alone never blocked
                texts = [t for c in dict.fromkeys((a, a.lower(), a.capitalize())) for t in (f" {c}", c)]
                forms = [self.tokenizer.encode(f, add_special_tokens=False) for f in texts]
                cache[a] = [list(f) for f in dict.fromkeys(map(tuple, forms)) if f]
            seqs += cache[a]
        return seqs, answers

    def _processor(self, decisions: list[Decision], starts: list[int]) -> ForbiddenContinuations:
        per_row = [self._sequences(d) for d in decisions]
        semantic = None
        if self.config.semantic_candidates > 0:
            embedder = self.classifier.store.embedder
            answer_vecs = [torch.from_numpy(embedder.encode(answers)) for _, answers in per_row]

            def semantic(row: int, matched: list[int], candidates: list[int]) -> list[int]:
                texts = [self.tokenizer.decode(matched + [c]).strip() for c in candidates]
                # torch, not numpy: numpy's OpenBLAS threads keep spinning after a product and take the
                # cores the model needs (as in `TargetStore.search`)
                sims = torch.from_numpy(embedder.encode(texts)) @ answer_vecs[row].T
                return [c for c, s in zip(candidates, sims.max(1).values.tolist())
                        if s >= self.config.semantic_threshold]

        return ForbiddenContinuations([seqs for seqs, _ in per_row], starts, self.config.penalty, semantic,
                                      self.config.semantic_candidates)

    @torch.no_grad()
    def _guarded_generate(self, prompts, decisions, max_new_tokens):
        tok, model, out = self.tokenizer, self.base.model, []
        for s in range(0, len(prompts), self.base.batch_size):
            batch = prompts[s : s + self.base.batch_size]
            rows = prompt_ids(tok, batch)
            width = max(map(len, rows))
            ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
            proc = self._processor(decisions[s : s + len(batch)], [width] * len(batch))
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 logits_processor=LogitsProcessorList([proc]), eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)
            out += [tok.decode(g[width:], skip_special_tokens=True).split("\n")[0].strip() for g in gen]
        return out

    @torch.no_grad()
    def _guarded_log_probs(self, prompts, answers, decisions):
        tok, model = self.tokenizer, self.base.model
        rows = [(ids, labels[:-1] + [IGNORE]) for ids, labels in encode_rows(tok, prompts, answers)]
        answer_starts = [len(p) for p in prompt_ids(tok, prompts)]
        out = []
        for s in range(0, len(rows), self.base.batch_size):
            ids, mask, labels = pad_rows(rows[s : s + self.base.batch_size], tok.pad_token_id)
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            starts = answer_starts[s : s + len(ids)]
            proc = self._processor(decisions[s : s + len(ids)], starts)
            for j in range(len(ids)):
                positions = (labels[j, 1:] != IGNORE).nonzero().flatten().tolist()  # logit p predicts token p + 1
                lp = [torch.log_softmax(proc.restrict(j, ids[j, starts[j] : p + 1].tolist(), logits[j, p]), -1)
                      [labels[j, p + 1]] for p in positions]
                out.append(torch.stack(lp) if lp else torch.empty(0))
        return out


@register_method("guard")
class GUARD(GuardMethod):
    config_class = GUARDConfig
    model_class = GUARDModel
    name = "guard"
