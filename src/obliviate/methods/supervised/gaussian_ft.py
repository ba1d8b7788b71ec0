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

Two departures from the paper, both defaults, both holding the model to the frozen target M0 rather
than to data:

    L = mean over the mixed batch of |M(x) - t(x)|^2,  t = M0(x_r) on retain, y~_f on forget
        + anchor_weight * |M(x_m) - M0(x_m)|^2,  x_m = a x_r + (1 - a) x_r',  a ~ U(0, 1)

`retain_targets: labels` and `anchor_weight: 0` give the paper's loss (with `epochs: 10`, exactly the
former default). The defaults read no label at all, so the pipeline hands this method the label-free
view unless `retain_targets` is `labels`.

Measured (benchmarks/supervised.py, issue 10's bar: forget RMSE within 10 % of gold's, retain and
test RMSE at most 10 % worse than the target's). Diabetes, 30 % random forgetting, target trained 20
epochs, lr 1e-3: the paper's loss for 10 passes met the bar on 17 of seeds 0-19 but missed seed 0 at
test RMSE 16 % worse than the target's (65.2 against 56.3); the defaults meet it on 17 of 20, seed 0
included (forget 57.1 against gold's 56.9, retain 45.0 and test 59.6 against the target's 43.9 and
56.3), and no seed costs more than 6.2 % test RMSE (mean 2.6 %). Synthetic group forgetting at the
regression preset's lr 3e-4: 15 of 20 (the paper's loss: 12), seed 0 included. Where the target
memorises (diabetes trained 40 epochs): 11 of 20, seed 0 included (the paper's loss: 4 of 20).

Measured on diabetes and not kept: an L2 pull of the weights toward the target's (1e-3 to 1, seeds
0-4: the forget error falls short of gold's as the test cost falls; seed 0 fails at every strength);
fewer or more passes of the paper's loss (on seed 0 the test cost is 11-22 % after every pass from
the first to the 20th); the retain labels plus distillation at the retain points only (5-6 of seeds
0-9 at 15-20 passes); SGD, or fine-tuning one layer only (seeds 0-4, seed 0 fails); the retain labels
kept beside the interpolation term (17-18 of 20 with seed 0 passing, but at 8-9 % test cost there,
near the edge; on the synthetic task seed 0 then needs lr 5e-4, where 10-16 of 20 pass).

    obliviate run --config regression --set methods=[gaussian_ft] --set method_args.gaussian_ft.anchor_weight=0
"""
from __future__ import annotations

import copy
from typing import Literal

import torch
from pydantic import Field

from obliviate.methods.supervised.common import FinetuneConfig, SupervisedUnlearner, optimise, steps_for
from obliviate.supervised.registry import register_supervised
from obliviate.supervised.train import batches, task_loss


class GaussianFTConfig(FinetuneConfig):
    epochs: int = Field(30, ge=1, description="passes over the retain set plus the relabelled forget set")
    forget_weight: float | None = Field(None, ge=0, description="unset: the paper's mixing (forget samples "
                                        "shuffled into the retain data, each weighted like a retain sample); "
                                        "a number: a separate forget batch each step, its loss times this")
    retain_targets: Literal["target", "labels"] = Field(
        "target", description="what the retain samples are fitted to: the frozen target's own outputs on them "
        "(reads no label) or their labels (the paper)")
    anchor_weight: float = Field(3.0, ge=0, description="weight of the pull toward the frozen target's outputs at "
                                 "random interpolations of two retain inputs (one such batch each step); 0: off")


def gaussian_targets(model, data, seed: int) -> torch.Tensor:
    """One substitute target per forget sample, drawn from N(mean, std) of the model's outputs on retain."""
    with torch.no_grad():
        out = model(data.retain_x)
    gen = torch.Generator().manual_seed(seed + 11)
    return out.mean(0) + out.std(0) * torch.randn((len(data.forget_x), out.shape[1]), generator=gen)


def interpolate(x: torch.Tensor, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """x[idx] each moved a uniform random fraction of the way toward another random row of x."""
    partner = torch.randint(len(x), (len(idx),), generator=gen)
    a = torch.rand(len(idx), 1, generator=gen)
    return a * x[idx] + (1 - a) * x[partner]


@register_supervised("gaussian_ft")
class GaussianFT(SupervisedUnlearner):
    config_class = GaussianFTConfig
    tasks = frozenset({"regression"})

    @property
    def uses_labels(self) -> bool:
        return self.config.retain_targets == "labels"

    def unlearn(self, model, data, seed: int = 0):
        c = self.config
        targets = gaussian_targets(model, data, seed)
        frozen = copy.deepcopy(model).eval().requires_grad_(False)
        # Refitting the retain labels is further training on a few hundred samples: on diabetes 10 passes
        # of retain_ft alone cost 5 % test RMSE. The target's own outputs ask for no change there at all,
        # so all the retain term resists is the bend the forget samples' Gaussian targets put in.
        kept = frozen(data.retain_x) if c.retain_targets == "target" else data.retain_y
        gen = torch.Generator().manual_seed(seed)
        anchor = batches(len(data.retain_x), c.batch_size, torch.Generator().manual_seed(seed + 5))

        # Holding the retain points alone leaves the function free between them, which is where unseen
        # (test) inputs fall; with random forgetting the forget inputs lie among them too, and fitting noise
        # there bent the fit enough to cost seed 0 16 % test RMSE. Interpolated retain inputs pin the target's
        # function across the region the retain data spans; the forget inputs' own loss still moves them.
        def anchor_loss(a: torch.Tensor) -> torch.Tensor:
            if not c.anchor_weight:
                return torch.zeros(())
            x = interpolate(data.retain_x, a, gen)
            return c.anchor_weight * task_loss(data.kind, model(x), frozen(x))

        if c.forget_weight is None:
            x, y = torch.cat([data.retain_x, data.forget_x]), torch.cat([kept, targets])
            return optimise(model, c.lr, steps_for(c.epochs, len(x), c.batch_size),
                            lambda i, a: task_loss(data.kind, model(x[i]), y[i]) + anchor_loss(a),
                            batches(len(x), c.batch_size, gen), anchor)

        def loss(r: torch.Tensor, f: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            return (task_loss(data.kind, model(data.retain_x[r]), kept[r]) + anchor_loss(a)
                    + c.forget_weight * task_loss(data.kind, model(data.forget_x[f]), targets[f]))

        return optimise(model, c.lr, steps_for(c.epochs, len(data.retain_x), c.batch_size), loss,
                        batches(len(data.retain_x), c.batch_size, gen),
                        batches(len(data.forget_x), c.batch_size, gen), anchor)
