"""Uniform choice: the true answer no likelier than a typical wrong one. L = CE(uniform, softmax(log π_θ(y|x), sg log π_θ(y'|x)))(forget) + w · KL(π_ref ‖ π_θ)(retain).

Each step pairs forget questions with one of their alternates y' (the record's `perturbed_answers`,
wrong answers of the same kind), scores both by summed log-probability as multiple choice does,
and trains toward the uniform distribution over the pair (`losses.uniform_choice_loss`). The
alternate is scored without gradient (sg): the answer comes down, no wrong answer is taught. With
alternates drawn at random, the stationary point is E[σ(s_y − s_y')] = 1/2, the answer at about
the median of its alternates' scores: a typical wrong answer, as for a model that never knew it. A
KL term holds the frozen target's next-token distribution on the retain answers (as `npo_kl`).

Why a ranking rather than lowering the answer: on SmolLM2-135M-Instruct a known capital leads its
multiple-choice distractors by 2.5 to 9 nats (benchmarks/smollm2_knowledge.py). NPO and UNDIAL
lower the answer's probability, and their gradients fade once it is small in absolute terms, while
it still leads: after 30 steps every forgotten capital was still chosen and other capitals had
begun to drop. Here the gradient on the answer is σ(s_y − s_y') − 1/2, large until the lead is gone,
and zero once the answer is tied, so it is not pushed below every alternate (an answer that is
always avoided is still known). The objective is TOFU's truth ratio (Maini et al. 2024, arXiv
2401.06121) at 1 made a loss; obliviate's own combination, not a published method.

Passages carry no alternates and are not trained on. `choice_weight` adds the mirror term on
retain QA records with perturbed answers: KL from the target's to the model's distribution over
(answer, alternate), which holds what multiple choice measures there rather than the next-token
distribution alone. On the SmolLM2 knowledge request (weight 30) it did not help: after 10 steps
sums were at 0.13 and the forgotten capitals still at 0.9, with each step 2.2 times as long.

    obliviate forget --model M --request capitals.yaml --method uniform_choice
"""

import random

import torch
from pydantic import Field

from obliviate.data import Benchmark, format_answer, format_prompt
from obliviate.errors import ObliviateError
from obliviate.methods import losses
from obliviate.methods.base import UnlearnConfig, Unlearner, retain_examples
from obliviate.methods.weight_space.kl import kl_to_reference
from obliviate.registry import register_method


class UniformChoiceConfig(UnlearnConfig):
    steps: int = Field(40, ge=1, description="optimizer steps")
    lr: float = Field(1e-3, gt=0, description="learning rate (cosine decay after warm-up)")
    retain_weight: float = Field(10.0, ge=0, description="weight w of the retain KL term")
    choice_weight: float = Field(0.0, ge=0, description="weight of a second retain term: KL from the target's to "
                                 "the model's distribution over (answer, a perturbed answer) of retain QA records, "
                                 "so their multiple-choice rankings hold (0: off)")


@register_method("uniform_choice")
class UniformChoice(Unlearner):
    config_class = UniformChoiceConfig
    name = "uniform_choice"
    uses_reference = True

    def examples(self, bench: Benchmark) -> dict[str, list[tuple[str, str]]]:
        bare = [r["question"] for r in bench.forget if not r.get("perturbed_answers")]
        if bare or not bench.forget:
            raise ObliviateError(f"method '{self.name}' needs forget QA records with perturbed_answers (wrong "
                                 f"answers of the same kind){f'; {bare[0]!r} has none' if bare else ''}; add them")
        # Every phrasing paired with every alternate, row by row: a batch draws random pairs.
        pairs = [(format_prompt(p), r, alt) for r in bench.forget for p in r["phrasings"] for alt in r["perturbed_answers"]]
        parts = {"forget": [(p, format_answer(r["answer"])) for p, r, _ in pairs],
                 "alternate": [(p, format_answer(alt)) for p, _, alt in pairs],  # aligned (`Unlearner.examples`)
                 "retain": retain_examples(bench)}
        if self.config.choice_weight:
            kept = [(format_prompt(p), r, alt) for r in bench.retain for p in r["phrasings"]
                    for alt in r.get("perturbed_answers") or []]
            if not kept:
                raise ObliviateError(f"method_args.{self.name}.choice_weight needs retain QA records with "
                                     "perturbed_answers; add them or set it to 0")
            # Drawn to forget's length, so both parts are sampled at forget's indices and stay paired.
            draw = [kept[i] for i in random.Random(0).choices(range(len(kept)), k=len(pairs))]
            parts["kept"] = [(p, format_answer(r["answer"])) for p, r, _ in draw]
            parts["kept_alternate"] = [(p, format_answer(alt)) for p, _, alt in draw]
        return parts

    def score(self, model, part) -> torch.Tensor:
        """Summed log-prob of each row's answer without its final end-of-text token, as multiple
        choice scores answers: with it, lowering the end token after the true answer alone tied a
        pair in training and left the answer's own probability where it was."""
        lp, valid = self.log_probs(model, part)
        return losses.sequence_log_prob(lp, valid * (valid.cumsum(1) < valid.sum(1, keepdim=True)))

    def loss(self, model, batch):
        true = self.score(model, batch.forget)
        with torch.no_grad():  # the answer comes down to its alternates; they are not raised to it
            alternate = self.score(model, batch.parts["alternate"])
        forget = losses.uniform_choice_loss(torch.stack([true, alternate], 1))
        loss = forget + self.config.retain_weight * kl_to_reference(self.reference, model, batch.retain)
        if self.config.choice_weight:
            kept = [batch.parts["kept"], batch.parts["kept_alternate"]]
            with torch.no_grad():
                ref = torch.stack([self.score(self.reference, part) for part in kept], 1)
            mine = torch.stack([self.score(model, part) for part in kept], 1)
            loss = loss + self.config.choice_weight * losses.kl_divergence(ref, mine)
        return loss
