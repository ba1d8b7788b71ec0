"""Gradient difference: ascend on forget, descend on retain. L = -NLL(forget) + w * NLL(retain).

Liu et al. 2022, "Continual Learning and Private Unlearning" (arXiv 2203.12817); the TOFU
baseline "grad diff" (Maini et al. 2024).

    obliviate run --set methods=[gradient_difference] --set method_args.gradient_difference.retain_weight=2
"""

from pydantic import Field

from obliviate.methods import losses
from obliviate.methods.base import UnlearnConfig, Unlearner
from obliviate.registry import register_method


class GradientDifferenceConfig(UnlearnConfig):
    retain_weight: float = Field(1.0, ge=0, description="weight w of the retain NLL term")


@register_method("gradient_difference")
class GradientDifference(Unlearner):
    config_class = GradientDifferenceConfig
    name = "gradient_difference"

    def loss(self, model, forget, retain):
        return losses.gradient_difference(*forget, *retain, retain_weight=self.config.retain_weight)
