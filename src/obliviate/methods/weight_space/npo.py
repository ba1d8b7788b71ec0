"""NPO: a bounded gradient ascent relative to the target. L = −(2/β)·E log σ(−β·log(π_θ(y|x)/π_ref(y|x))).

Negative Preference Optimization (Zhang et al. 2024, arXiv 2404.05868): DPO with only a
dispreferred answer. `npo` uses the forget loss alone; `npo_rt` adds w · NLL(retain) (the paper's
"NPO+RT"); `npo_kl` adds w · KL(π_ref ‖ π_θ) on retain answer positions (the paper's "NPO+KL"),
which keeps the reference's whole next-token distribution there rather than only its labelled
answer. π_ref is the frozen target; log-probs are summed over answer tokens.

    obliviate run --set methods=[npo,npo_rt] --set method_args.npo_rt.beta=0.2
"""

import torch
from pydantic import Field

from obliviate.methods import losses
from obliviate.methods.base import UnlearnConfig, Unlearner
from obliviate.methods.weight_space.kl import kl_to_reference
from obliviate.registry import register_method


class NPOConfig(UnlearnConfig):
    steps: int = Field(60, ge=1, description="optimizer steps")
    lr: float = Field(2e-3, gt=0, description="learning rate (cosine decay after warm-up)")
    beta: float = Field(0.1, gt=0, description="inverse temperature β (β → 0 gives gradient ascent)")


class NPORTConfig(NPOConfig):
    # Tuned on tiny (10 % forget): forget accuracy 99 % -> 3 %, retain 98 % -> 92 %, world 100 % -> 98 %
    # (lr 2e-3 forgot as well but left retain at 88 %).
    steps: int = Field(80, ge=1, description="optimizer steps")
    lr: float = Field(1e-3, gt=0, description="learning rate (cosine decay after warm-up)")
    retain_weight: float = Field(4.0, ge=0, description="weight w of the retain NLL term")


@register_method("npo")
class NPO(Unlearner):
    config_class = NPOConfig
    name = "npo"
    uses_reference = True

    def forget_loss(self, model, batch) -> torch.Tensor:
        lp, valid = self.log_probs(model, batch.forget)
        with torch.no_grad():
            ref_lp, _ = self.log_probs(self.reference, batch.forget)
        return losses.npo_loss(lp, valid, ref_lp, self.config.beta)

    def loss(self, model, batch):
        return self.forget_loss(model, batch)


@register_method("npo_rt")
class NPORT(NPO):
    config_class = NPORTConfig
    name = "npo_rt"

    def retain_loss(self, model, batch) -> torch.Tensor:
        return losses.mean_nll(*self.log_probs(model, batch.retain))

    def loss(self, model, batch):
        return self.forget_loss(model, batch) + self.config.retain_weight * self.retain_loss(model, batch)


class NPOKLConfig(NPORTConfig):
    retain_weight: float = Field(4.0, ge=0, description="weight w of the retain KL term")


@register_method("npo_kl")
class NPOKL(NPORT):
    config_class = NPOKLConfig
    name = "npo_kl"

    def retain_loss(self, model, batch) -> torch.Tensor:
        return kl_to_reference(self.reference, model, batch.retain)
