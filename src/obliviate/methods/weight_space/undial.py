"""UNDIAL: self-distillation toward the target with the true token's logit lowered. L = CE(softmax(z_ref − γ·e_y), π_θ)(forget) + w · KL(π_ref ‖ π_θ)(retain).

Unlearning via Self-Distillation on Adjusted Logits (Dong et al. 2024, arXiv 2402.10052): at each
labelled forget position the frozen target's logits have the true next token's logit lowered by
γ, and the model is trained toward that distribution (`losses.undial_loss`). The target is fixed
and leaves every other token's ratio to the rest as the target had it, so the model unlearns the
forget tokens without being pushed anywhere else; the paper reports it less sensitive to its
settings and steadier over training than gradient ascent and NPO. Its gradient on the true token
is p − p_teacher, which fades with p: on SmolLM2 a known capital that has fallen to p ~ 1e-3 still
leads its multiple-choice distractors (see `uniform_choice`).

Departure from the paper: the paper trains on the forget loss alone; here a retain term holds the
target's next-token distribution on retain answers (w · KL, as `kl` and `npo_kl`), as
open-unlearning's UNDIAL adds a retain loss too. w = 0 gives the paper's loss.

    obliviate run --set methods=[undial] --set method_args.undial.gamma=10
"""

import torch
from pydantic import Field

from obliviate.methods import losses
from obliviate.methods.base import UnlearnConfig, Unlearner
from obliviate.methods.weight_space.kl import kl_to_reference
from obliviate.models.hf import IGNORE, labelled_logits
from obliviate.registry import register_method


class UndialConfig(UnlearnConfig):
    steps: int = Field(80, ge=1, description="optimizer steps")
    lr: float = Field(1e-3, gt=0, description="learning rate (cosine decay after warm-up)")
    gamma: float = Field(10.0, gt=0, description="γ: how far the true token's logit is lowered in the teacher")
    retain_weight: float = Field(1.0, ge=0, description="weight w of the retain KL term (0: the paper's loss)")


@register_method("undial")
class Undial(Unlearner):
    config_class = UndialConfig
    name = "undial"
    uses_reference = True

    def loss(self, model, batch):
        ids, mask, labels = batch.forget
        targets = labels[:, 1:][labels[:, 1:] != IGNORE]  # the order `labelled_logits` returns positions in
        with torch.no_grad():
            ref = labelled_logits(self.reference, batch.forget)
        forget = losses.undial_loss(ref, labelled_logits(model, batch.forget), targets, self.config.gamma)
        if not self.config.retain_weight:
            return forget
        return forget + self.config.retain_weight * kl_to_reference(self.reference, model, batch.retain)
