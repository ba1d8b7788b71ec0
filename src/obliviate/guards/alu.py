"""ALU: agentic LLM unlearning. Sanyal & Mandal 2025, "Agents Are All You Need for LLM Unlearning"
(arXiv 2502.00406).

Every request runs four steps: the served model drafts an answer (vanilla agent); the audit
checks the draft against the top-k targets retrieved for the prompt (AuditErase); the critic
scores the draft from the audit's findings; the composer returns the draft or, when the critic's
score is below `min_score`, the refusal. Only the top-k targets enter the audit, so a request's
cost does not grow with the number of targets.

Two agents play the audit. `ModelAgent` (the default for instruct models, e.g.
SmolLM2-135M-Instruct) is the served model itself: for each retrieved target it is asked, in its
chat template, whether the draft reveals that person's protected facts, and says yes when
log p("yes") > log p("no"). `RuleAgent` (the default for the tiny model, which cannot follow
instructions) is rule-backed: the audit finds (a) an alias of any target in the draft, found by the store's n-gram index (a
name leaking in a reverse question), and (b) for a flagged prompt, a forbidden answer of a
retrieved target appearing in the draft as a whole word sequence; the critic gives 1 for any
finding, else 5.

`log_probs`: ALU's composer never emits an answer its audit rejects, so such an answer's tokens
are scored at most `rejected_log_prob` each (a finite stand-in for log 0); answers that pass keep
the target's log-probabilities. A black-box pipeline: no `token_stats`, no hidden states.

    obliviate run --set methods=[alu] --set method_args.alu.top_k=5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field

from obliviate.guards.base import GuardConfig, GuardedModel, GuardMethod
from obliviate.guards.classifier import Decision
from obliviate.guards.targets import TargetStore, words
from obliviate.models.hf import uses_chat_template
from obliviate.registry import register_method


class ALUConfig(GuardConfig):
    agent: Literal["auto", "rule", "model"] = Field("auto", description="who audits drafts: rules, or the served "
                                                    "model plus rules (model), or auto (model if it has a chat "
                                                    "template, else rules)")
    refusal: str = Field("I don't know.", description="what the composer answers instead of a leaking draft")
    min_score: int = Field(3, ge=1, le=5, description="critic score (1-5) a draft needs to be returned")
    rejected_log_prob: float = Field(-20.0, lt=0, description="per-token log-prob ceiling of answers the "
                                     "audit rejects (a finite stand-in for log 0)")


@dataclass(frozen=True)
class Finding:
    target: str
    leaked: str  # the alias or forbidden answer found in the draft


def contains_phrase(text_words: list[str], phrase: str) -> bool:
    """Whether `phrase`'s words occur contiguously in `text_words` (case-folded)."""
    p = [w for w, _, _ in words(phrase)]
    return bool(p) and any(text_words[i : i + len(p)] == p for i in range(len(text_words) - len(p) + 1))


class RuleAgent:
    """The audit, critic and composer of ALU as rules (the vanilla answer comes from the served model)."""

    def __init__(self, store: TargetStore, refusal: str, min_score: int):
        self.store, self.refusal, self.min_score = store, refusal, min_score

    def audit(self, draft: str, decision: Decision) -> list[Finding]:
        found = [Finding(self.store.targets[t].name, draft[s:e]) for t, s, e in self.store.alias_hits(draft)]
        if decision.fired:
            draft_words = [w for w, _, _ in words(draft)]
            for t in decision.targets:
                target = self.store.targets[t]
                found += [Finding(target.name, a) for a in target.forbidden_answers if contains_phrase(draft_words, a)]
        return found

    @staticmethod
    def critique(findings: list[Finding]) -> int:
        return 1 if findings else 5

    def compose(self, draft: str, score: int) -> str:
        return draft if score >= self.min_score else self.refusal


AUDIT_PROMPT = ("You check answers for leaks of protected information.\nProtected person: {name}\n"
                "Protected facts: {facts}\nAnswer to check: \"{draft}\"\nDoes the answer to check reveal any "
                "protected fact about this person? Reply yes or no.")


class ModelAgent(RuleAgent):
    """ALU's audit played by the served instruct model (`lm`); the critic and composer are RuleAgent's.

    The rules' findings are kept too (the union): SmolLM2-135M-Instruct alone is a weak auditor. On
    40 drafts stating a forget person's value and 40 stating a wrong one it said "yes" to 13 and 8;
    the rules flag 40 and 0, the union 40 and 8 (`python benchmarks/alu_agent.py`). The rules catch
    a value stated verbatim; the model can add drafts that leak it in other words, at the price of
    refusing some clean answers to flagged prompts.

    One batched `log_probs` call scores "yes" and "no" for every (draft, retrieved target) pair of
    the prompts the classifier flags (unflagged prompts pass: auditing every answer would cost k
    extra forward passes per request); no sampling, so the audit is deterministic.
    """

    def __init__(self, lm, store: TargetStore, refusal: str, min_score: int):
        super().__init__(store, refusal, min_score)
        self.lm = lm

    def audit_many(self, drafts: list[str], decisions: list[Decision]) -> list[list[Finding]]:
        pairs = [(i, t) for i, d in enumerate(decisions) if d.fired for t in d.targets]
        prompts = [AUDIT_PROMPT.format(name=self.store.targets[t].name, draft=drafts[i],
                                       facts="; ".join(self.store.targets[t].forbidden_answers))
                   for i, t in pairs]
        if not prompts:
            return [RuleAgent.audit(self, d, dec) for d, dec in zip(drafts, decisions)]
        lps = self.lm.log_probs(prompts + prompts, ["yes"] * len(prompts) + ["no"] * len(prompts))
        found = [RuleAgent.audit(self, d, dec) for d, dec in zip(drafts, decisions)]
        for k, (i, t) in enumerate(pairs):
            if lps[k][0] > lps[len(prompts) + k][0]:  # first token: "yes" vs "no"
                found[i].append(Finding(self.store.targets[t].name, drafts[i]))
        return found

    def audit(self, draft: str, decision: Decision) -> list[Finding]:
        return self.audit_many([draft], [decision])[0]


class ALUModel(GuardedModel):
    kind = "alu"
    config_class = ALUConfig

    @property
    def agent(self) -> RuleAgent:
        use_model = self.config.agent == "model" or (self.config.agent == "auto" and
                                                     uses_chat_template(self.base.tokenizer))
        if use_model:
            return ModelAgent(self.base, self.classifier.store, self.config.refusal, self.config.min_score)
        return RuleAgent(self.classifier.store, self.config.refusal, self.config.min_score)

    def _passes(self, texts: list[str], decisions: list[Decision]) -> list[bool]:
        agent = self.agent
        findings = (agent.audit_many(texts, decisions) if isinstance(agent, ModelAgent)
                    else [agent.audit(t, d) for t, d in zip(texts, decisions)])
        return [agent.critique(f) >= agent.min_score for f in findings]

    # Every prompt goes through the agents (the audit also catches names in answers to unflagged
    # prompts), so ALU overrides the routing instead of the flagged-only hooks.
    def generate(self, prompts: list[str], max_new_tokens: int = 24) -> list[str]:
        decisions = self.classifier.classify(prompts)
        drafts = self.base.generate(prompts, max_new_tokens)
        return [d if ok else self.config.refusal for d, ok in zip(drafts, self._passes(drafts, decisions))]

    def log_probs(self, prompts: list[str], answers: list[str]) -> list[torch.Tensor]:
        decisions = self.classifier.classify(prompts)
        lps = self.base.log_probs(prompts, answers)
        ceiling = self.config.rejected_log_prob
        return [lp if ok else lp.clamp(max=ceiling) for lp, ok in zip(lps, self._passes(answers, decisions))]

    def audit(self, prompt: str, draft: str) -> list[Finding]:
        """The audit's findings for one (prompt, draft) pair: what a report or a user can inspect."""
        return self.agent.audit(draft, self.classifier.classify([prompt])[0])


@register_method("alu")
class ALU(GuardMethod):
    config_class = ALUConfig
    model_class = ALUModel
    name = "alu"
