"""KL: ascend on forget, keep the retain next-token distributions. L = −NLL(forget) + w · KL(π_ref ‖ π_θ)(retain).

The TOFU baseline "KL Min" (Maini et al. 2024, arXiv 2401.06121): gradient ascent on the forget
set, and on retain text the KL divergence from the frozen target's next-token distribution to the
model's, at the labelled (answer) positions, so the model keeps its whole distribution there, not
only the top answer.

    obliviate run --set methods=[kl] --set method_args.kl.retain_weight=4
"""

import torch
from pydantic import Field

from obliviate.methods import losses
from obliviate.methods.base import Part, UnlearnConfig, Unlearner
from obliviate.models.hf import labelled_logits
from obliviate.registry import register_method


class KLConfig(UnlearnConfig):
    # Tuned on tiny (10 % forget): forget accuracy 99 % -> 9 %, retain 98 % -> 91 %, world 100 % -> 99 %.
    # With w = 4 the retain accuracy fell to 82 %: ascent is unbounded, the KL term must outweigh it.
    steps: int = Field(80, ge=1, description="optimizer steps")
    lr: float = Field(2e-3, gt=0, description="learning rate (cosine decay after warm-up)")
    retain_weight: float = Field(10.0, ge=0, description="weight w of the retain KL term")


def kl_to_reference(reference, model, part: Part) -> torch.Tensor:
    """KL(π_ref ‖ π_θ) at the labelled positions of `part`, the frozen reference scored without gradient."""
    with torch.no_grad():
        ref = labelled_logits(reference, part)
    return losses.kl_divergence(ref, labelled_logits(model, part))


@register_method("kl")
class KL(Unlearner):
    config_class = KLConfig
    name = "kl"
    uses_reference = True

    def loss(self, model, batch):
        forget = losses.gradient_ascent(*self.log_probs(model, batch.forget))
        return forget + self.config.retain_weight * kl_to_reference(self.reference, model, batch.retain)
