"""Gaussian fine-tuning (Tarun et al. 2023, Deep Regression Unlearning, ICML, arXiv 2210.08196).

The regression analogue of random-label unlearning: instead of arbitrary targets, each forget
sample gets a target drawn from a Gaussian fitted to the model's own outputs on the training inputs,
so the substitute targets look like ordinary predictions rather than outliers:

    y~_f ~ N(mean(M(x)), std(M(x))),  x in D_r ∪ D_f;      loss = L(M(x_r), y_r) + w * L(M(x_f), y~_f)

    obliviate run --config regression --set methods=[gaussian_ft] --set method_args.gaussian_ft.epochs=20
"""

from __future__ import annotations

import torch

from obliviate.methods.supervised.common import FinetuneConfig, SupervisedUnlearner, relabel_finetune
from obliviate.supervised.registry import register_supervised


@register_supervised("gaussian_ft")
class GaussianFT(SupervisedUnlearner):
    config_class = FinetuneConfig
    tasks = frozenset({"regression"})

    def unlearn(self, model, data, seed: int = 0):
        with torch.no_grad():
            out = model(torch.cat([data.retain_x, data.forget_x]))
        gen = torch.Generator().manual_seed(seed + 11)
        noise = torch.randn((len(data.forget_x), out.shape[1]), generator=gen)
        targets = out.mean(0) + out.std(0) * noise  # drawn once: a fixed substitute target per sample
        return relabel_finetune(model, data, targets, self.config, seed)
