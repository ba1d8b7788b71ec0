"""Gradient ascent: raise the loss on the forget set. L = -NLL(forget).

Jang et al. 2023, "Knowledge Unlearning for Mitigating Privacy Risks in Language Models"
(arXiv 2210.01504). Unbounded: run long enough and it destroys the model (TOFU's observation).

    obliviate run --set methods=[gradient_ascent] --set method_args.gradient_ascent.steps=20
"""

from obliviate.methods import losses
from obliviate.methods.base import UnlearnConfig, Unlearner
from obliviate.registry import register_method


class GradientAscentConfig(UnlearnConfig):
    pass


@register_method("gradient_ascent")
class GradientAscent(Unlearner):
    config_class = GradientAscentConfig
    name = "gradient_ascent"

    def loss(self, model, batch):
        return losses.gradient_ascent(*self.log_probs(model, batch.forget))
