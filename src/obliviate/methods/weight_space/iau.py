"""IAU: unlearning as one incremental-learning step. θ_u = θ* − η·Adam(∇_θ[ℓ̄(D_r; θ*) − ℓ̄(D_f; θ*)]).

Liu, Wu, Lian & Chen 2025, "Efficient Machine Unlearning via Influence Approximation" (IAU,
arXiv 2507.23257; code at github.com/Lolo1222/IAU). Influence-function removal,
θ_{−z} − θ* ≈ (1/n)·H⁻¹∇ℓ(z, θ*), needs the inverse Hessian; the paper shows that removing z has
the same influence as *adding* a counterfactual point z⁺ whose gradient is −∇ℓ(z, θ*), and adding
a point is incremental learning: a gradient step, no Hessian. What this file implements:

- the unlearning update: the gradient of the mean loss over the whole forget set, negated (the
  counterfactual points), plus the gradient of the mean loss over the remaining data (the paper's
  gradient correction, which keeps the step from hurting retained behaviour), summed with equal
  weight and applied in one Adam step of size `lr`, as the authors' released `IAU_unlearn.py`
  does (full-set gradients: `batch_size` defaults to more rows than any pool, so a step sees all);
- for a language model, ℓ is the mean token NLL of the answers (the paper's classifiers use
  cross-entropy over labels).

Not implemented, and why: the paper's gradient restriction (training the original model with
ℓ + λ‖∇_θ ℓ‖₂ so single samples have small, removable influence) is a change to how the target
is trained; obliviate unlearns a target that is already trained. Our assumption beyond the
paper: `steps` > 1 repeats the same full-set step from the updated weights (the paper takes
one); the tiny-preset default is tuned, see the config.

    obliviate run --set methods=[iau] --set method_args.iau.lr=0.01
"""

from pydantic import Field

from obliviate.methods import losses
from obliviate.methods.base import UnlearnConfig, Unlearner
from obliviate.registry import register_method


class IAUConfig(UnlearnConfig):
    # Does NOT meet the issue-5 bar on tiny (10 % forget). A first Adam step moves every weight by
    # ±η (m/√v = sign of the gradient), so η trades forgetting for retain directly. Defaults: the
    # largest η keeping retain within the bar: forget 99 % -> 77 %, retain 98 % -> 90 %, world 100 %
    # (old η 1e-2: 51 / 79 / 99; η 3e-3: 85 / 95 / 100; 5 steps at 2e-3: 70 / 89 / 100).
    steps: int = Field(1, ge=1, description="full-set update steps (the paper: 1)")
    lr: float = Field(5e-3, gt=0, description="step size η of the Adam update")
    warmup: float = Field(0.0, ge=0, lt=1, description="share of steps spent warming up")
    batch_size: int = Field(1_000_000, ge=1, description="rows per step; above the pool sizes = full-set gradients")
    retain_weight: float = Field(1.0, ge=0, description="weight of the remaining-data gradient correction")


@register_method("iau")
class IAU(Unlearner):
    config_class = IAUConfig
    name = "iau"

    def loss(self, model, batch):
        return losses.gradient_difference(*self.log_probs(model, batch.forget), *self.log_probs(model, batch.retain),
                                          retain_weight=self.config.retain_weight)
