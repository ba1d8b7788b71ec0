"""Blindspot unlearning (Tarun et al. 2023, Deep Regression Unlearning, ICML, arXiv 2210.08196).

A fresh model B (the "blindspot" model) is trained for only a few epochs on the retain set: it has
learnt the retain data a little and never seen the forget data. The original model M is then
fine-tuned so it keeps fitting the retain labels while its outputs and layer-wise activations on
forget inputs are drawn to B's:

    L = L_task(M(x_r), y_r) + w * [ |M(x_f) - B(x_f)|_1 + beta * sum_l | a(h_l^M(x_f)) - a(h_l^B(x_f)) |^2 ]

where h_l is layer l's activation and a(h) = h^2 / ||h^2|| the normalised activation "attention" map
(Zagoruyko & Komodakis 2017, arXiv 1612.03928), for an MLP's (n, width) activations; the authors'
code uses beta = 50. Their code mixes retain and forget samples in one batch, weighted by their
share, with an L1 retain loss; here each step takes one retain batch and one forget batch, the
retain term is the task loss (squared error or cross-entropy) and the forget term is weighted by
`forget_weight`.

    obliviate run --config regression --set methods=[blindspot] --set method_args.blindspot.epochs=20
"""

from __future__ import annotations

import copy

import torch
from pydantic import Field
from torch.nn import functional as F

from obliviate.methods.supervised.common import FinetuneConfig, SupervisedUnlearner, retain_plus_forget
from obliviate.supervised.registry import register_supervised
from obliviate.supervised.train import fit


class BlindspotConfig(FinetuneConfig):
    blindspot_epochs: int = Field(2, ge=1, description="epochs the fresh blindspot model trains on retain")
    blindspot_lr: float = Field(1e-3, gt=0, description="Adam learning rate of the blindspot model")
    beta: float = Field(50.0, ge=0, description="weight of the layer-wise activation term (authors' code: 50)")


def attention(h: torch.Tensor) -> torch.Tensor:
    return F.normalize(h.pow(2), dim=1)


def attraction(model, blind, x: torch.Tensor, beta: float) -> torch.Tensor:
    """Output L1 plus beta times the per-layer squared distance of attention maps, to the frozen blindspot."""
    hm, hb = model.hidden(x), [h.detach() for h in blind.hidden(x)]
    out_m, out_b = model.head(hm[-1]), blind.head(hb[-1]).detach()
    layers = sum((attention(a) - attention(b)).pow(2).mean() for a, b in zip(hm, hb))
    return F.l1_loss(out_m, out_b) + beta * layers


@register_supervised("blindspot")
class Blindspot(SupervisedUnlearner):
    config_class = BlindspotConfig

    def unlearn(self, model, data, seed: int = 0):
        c = self.config
        blind = copy.deepcopy(model)
        torch.manual_seed(seed + 1)  # a fresh initialisation of the same architecture
        for module in blind.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        fit(blind, data.retain_x, data.retain_y, data.kind, c.blindspot_epochs, c.blindspot_lr, c.batch_size,
            0.0, seed + 1)
        blind.requires_grad_(False)
        self.blindspot = blind
        return retain_plus_forget(model, data, lambda f: attraction(model, blind, data.forget_x[f], c.beta), c, seed)
