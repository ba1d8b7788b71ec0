"""IdK preference optimisation: prefer a refusal to the forget answer. L = DPO(y_w = refusal, y_l = answer) + w·NLL(retain).

Direct Preference Optimization (Rafailov et al. 2023, arXiv 2305.18290) with "I don't know"-style
refusals as the preferred answers, as in TOFU's "IDK" variants (Maini et al. 2024, arXiv
2401.06121) and IdkPO (Zhang et al. 2024, arXiv 2404.05868). π_ref is the frozen target. Each
forget example gets one refusal (aligned part "refusal"), drawn from `REFUSALS` with a fixed seed.

A forget biography has no prompt ("Sorrel Foxley: Tallinn, 1951, ..."), and a refusal with no
prompt would teach the model to refuse everything. So its name (the text up to the first ":") becomes the prompt
of both sides: the model learns to answer "Sorrel Foxley:" with a refusal instead of the record.

    obliviate run --set methods=[idk] --set method_args.idk.beta=0.2
"""

import random

import torch
from pydantic import Field

from obliviate.data import Benchmark
from obliviate.methods import losses
from obliviate.methods.base import UnlearnConfig, Unlearner, retain_examples
from obliviate.registry import register_method

REFUSALS = [
    " I don't know.",
    " I have no information about that person.",
    " I'm not sure.",
    " I cannot answer that.",
    " That is not something I know.",
    " I have no idea.",
    " I don't have that information.",
    " Sorry, I can't help with that.",
    " I am unable to say.",
    " I don't remember.",
]


class IdkConfig(UnlearnConfig):
    # Does NOT meet the issue-5 bar on tiny (10 % forget); best setting that keeps retain and world
    # within it: forget 99 % -> 77 %, retain 98 % -> 92 %, world 100 % -> 94 % (old lr 2e-3, w 1: 91 / 96 / 95).
    # The DPO margin saturates by raising the refusals, not lowering the answer (slice accuracy stalls
    # at 40-70 %), and refusals spread to world questions, which the retain term does not cover:
    # lr 5e-3: 43 / 83 / 19; β 0.02, lr 3e-3: 37 / 91 / 73; β 0.5 changes nothing at lr 2e-3.
    steps: int = Field(80, ge=1, description="optimizer steps")
    lr: float = Field(3e-3, gt=0, description="learning rate (cosine decay after warm-up)")
    beta: float = Field(0.1, gt=0, description="DPO inverse temperature β")
    retain_weight: float = Field(4.0, ge=0, description="weight w of the retain NLL term")


def split_record(prompt: str, completion: str) -> tuple[str, str]:
    """A prompt-less text becomes (name up to the first ':', the rest); a QA pair stays as is."""
    if prompt or ":" not in completion:
        return prompt, completion
    head, _, tail = completion.partition(":")
    return head + ":", tail


@register_method("idk")
class Idk(Unlearner):
    config_class = IdkConfig
    name = "idk"
    uses_reference = True

    def examples(self, bench: Benchmark) -> dict[str, list[tuple[str, str]]]:
        forget = [split_record(p, c) for p, c in bench.training_examples(("forget",))]
        rng = random.Random(0)
        refusal = [(p, rng.choice(REFUSALS)) for p, _ in forget]  # aligned with forget row by row
        return {"forget": forget, "refusal": refusal, "retain": retain_examples(bench)}

    def loss(self, model, batch):
        chosen, rejected = batch.parts["refusal"], batch.forget
        chosen_lp, chosen_valid = self.log_probs(model, chosen)
        rejected_lp, rejected_valid = self.log_probs(model, rejected)
        with torch.no_grad():
            ref_chosen, _ = self.log_probs(self.reference, chosen)
            ref_rejected, _ = self.log_probs(self.reference, rejected)
        pref = losses.dpo_loss(chosen_lp, chosen_valid, rejected_lp, rejected_valid, ref_chosen, ref_rejected,
                               self.config.beta)
        return pref + self.config.retain_weight * losses.mean_nll(*self.log_probs(model, batch.retain))
