"""Gaussian fine-tuning (Tarun et al. 2023, Deep Regression Unlearning, ICML, arXiv 2210.08196).

The regression analogue of amnesiac (random-label) unlearning: instead of arbitrary targets, each
forget sample gets a target drawn once from a Gaussian fitted to the model's own outputs on the
retain inputs, so the substitute targets look like ordinary predictions rather than outliers (and
owe nothing to what the model says about the forget set); the model is then fine-tuned on the retain
set together with the relabelled forget set:

    y~_f ~ N(mean(M(x_r)), std(M(x_r))),  x_r in D_r;      fine-tune M on D_r ∪ {(x_f, y~_f)}

As in amnesiac learning (Graves et al. 2021), after which the paper names its Algorithm 2
"Gaussian-Amnesiac Learning", and as in the authors' code, the relabelled forget samples are mixed
into the retain data: one shuffled dataset, every sample weighted alike, so the retain loss carries
|D_r| / (|D_r| + |D_f|) of the weight and each forget sample is seen once per epoch. `forget_weight`
set to a number switches to the baselines' scheme (a retain batch plus a forget batch each step).

Defaults: 10 passes at Adam 1e-3 (the authors' rate and the training rate), one setting for every
task. The authors fit the Gaussian to the training labels and fine-tune for one epoch of a large
data set (AgeDB); on diabetes (265 train samples) one epoch is 9 steps and barely moves the forget
error. How far the budget reaches differs by task (benchmarks/supervised.py, seeds 0-19): on diabetes
with 30 % random forgetting 10 passes meet the issue's bar on 17 of 20 seeds (on seeds 0-9, 8 of 10;
5 passes: 5 of 10). Seed 0 is a miss, at 16 % worse test RMSE than the target's: fitting noise at a
third of the points bends the fit between them. On the synthetic group task the same budget overshoots
(forget RMSE 35 % above gold's), so the regression preset sets lr 3e-4 (12 of 20 seeds). Where the
target memorises (diabetes trained 40 epochs) it meets the bar on 4 of 20 seeds.

    obliviate run --config regression --set methods=[gaussian_ft] --set method_args.gaussian_ft.epochs=5
"""

from __future__ import annotations

import torch
from pydantic import Field

from obliviate.methods.supervised.common import FinetuneConfig, SupervisedUnlearner, fit_pairs, relabel_finetune
from obliviate.supervised.registry import register_supervised


class GaussianFTConfig(FinetuneConfig):
    epochs: int = Field(10, ge=1, description="passes over the retain set plus the relabelled forget set")
    forget_weight: float | None = Field(None, ge=0, description="unset: the paper's mixing (forget samples "
                                        "shuffled into the retain data, each weighted like a retain sample); "
                                        "a number: a separate forget batch each step, its loss times this")


def gaussian_targets(model, data, seed: int) -> torch.Tensor:
    """One substitute target per forget sample, drawn from N(mean, std) of the model's outputs on retain."""
    with torch.no_grad():
        out = model(data.retain_x)
    gen = torch.Generator().manual_seed(seed + 11)
    return out.mean(0) + out.std(0) * torch.randn((len(data.forget_x), out.shape[1]), generator=gen)


@register_supervised("gaussian_ft")
class GaussianFT(SupervisedUnlearner):
    config_class = GaussianFTConfig
    tasks = frozenset({"regression"})

    def unlearn(self, model, data, seed: int = 0):
        targets = gaussian_targets(model, data, seed)
        if self.config.forget_weight is None:
            x, y = torch.cat([data.retain_x, data.forget_x]), torch.cat([data.retain_y, targets])
            return fit_pairs(model, x, y, data.kind, self.config, seed)
        return relabel_finetune(model, data, targets, self.config, seed)
