"""Uniform choice: make the true answer exactly as likely as its alternates. L = CE(uniform, softmax_k log π_θ(y_k|x))(forget) + w · KL(π_ref ‖ π_θ)(retain).

For each forget question the model scores the true answer and K − 1 alternates (the record's
`perturbed_answers`: wrong answers of the same kind) by summed log-probability, the way multiple
choice scores them, and is trained toward the uniform distribution over those K candidates
(`losses.uniform_choice_loss`); a KL term holds the frozen target's next-token distribution on the
retain answers (as `kl` and `npo_kl`).

Why a ranking among candidates rather than lowering the answer: on SmolLM2-135M-Instruct a known
capital leads its multiple-choice distractors by 2.5 to 9 nats (benchmarks/smollm2_knowledge.py).
NPO and UNDIAL lower the answer's probability, and their gradients fade once it is small in absolute
terms, while it still leads the distractors: at 30 steps every forgotten capital was still chosen
while other capitals had begun to drop. Here the gradient on the true answer is its share among the
candidates minus 1/K, which stays large until the lead is gone, and the loss is at its minimum with
the candidates tied, not with the answer pushed below them (an answer that is always avoided is
still known). The objective is the truth ratio of TOFU (Maini et al. 2024, arXiv 2401.06121) at 1,
made a loss; obliviate's own combination, not a published method.

Passages carry no alternates and are not trained on; a request needs QA records with (or with
borrowed, `requests.request`) perturbed answers.

    obliviate forget --model M --request capitals.yaml --method uniform_choice
"""

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
    alternates: int = Field(3, ge=1, description="K − 1: alternates per question (the first of its perturbed answers)")
    retain_weight: float = Field(10.0, ge=0, description="weight w of the retain KL term")


@register_method("uniform_choice")
class UniformChoice(Unlearner):
    config_class = UniformChoiceConfig
    name = "uniform_choice"
    uses_reference = True

    def examples(self, bench: Benchmark) -> dict[str, list[tuple[str, str]]]:
        k = self.config.alternates
        short = [r["question"] for r in bench.forget if len(r.get("perturbed_answers") or []) < k]
        if short:
            raise ObliviateError(f"method '{self.name}': forget record '{short[0]}' has fewer than {k} perturbed "
                                 f"answers; give each record perturbed_answers or lower "
                                 f"method_args.{self.name}.alternates")
        rows = [(format_prompt(p), r) for r in bench.forget for p in r["phrasings"]]
        parts = {"forget": [(p, format_answer(r["answer"])) for p, r in rows]}
        for j in range(k):  # aligned with forget row by row (`Unlearner.examples`)
            parts[f"alt{j}"] = [(p, format_answer(r["perturbed_answers"][j])) for p, r in rows]
        return parts | {"retain": retain_examples(bench)}

    def loss(self, model, batch):
        true = losses.sequence_log_prob(*self.log_probs(model, batch.forget))
        with torch.no_grad():  # the answer comes down to its alternates; they are not raised to it
            alternates = [losses.sequence_log_prob(*self.log_probs(model, batch.parts[f"alt{j}"]))
                          for j in range(self.config.alternates)]
        scores = torch.stack([true, *alternates], 1)
        forget = losses.uniform_choice_loss(scores)
        return forget + self.config.retain_weight * kl_to_reference(self.reference, model, batch.retain)
