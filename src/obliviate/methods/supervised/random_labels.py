"""Baseline: fine-tune on retain plus the forget set with random labels (Graves et al. 2021, Amnesiac
Machine Learning, arXiv 2010.10981), or random targets for regression.

Classification: each forget sample gets a uniformly drawn wrong class. Regression: a target drawn
uniformly over the range of the retain targets. Loss: L(retain, y) + w * L(forget, random).

    obliviate run --config regression --set methods=[random_labels]
"""

from __future__ import annotations

import torch

from obliviate.methods.supervised.common import FinetuneConfig, SupervisedUnlearner, relabel_finetune
from obliviate.supervised.registry import register_supervised


@register_supervised("random_labels")
class RandomLabels(SupervisedUnlearner):
    config_class = FinetuneConfig

    def unlearn(self, model, data, seed: int = 0):
        gen = torch.Generator().manual_seed(seed + 7)
        n = len(data.forget_x)
        if data.kind == "classification":
            shift = torch.randint(1, data.n_outputs, (n,), generator=gen)  # never the true class
            targets = (data.forget_y + shift) % data.n_outputs
        else:
            lo, hi = data.retain_y.min(), data.retain_y.max()
            targets = lo + (hi - lo) * torch.rand((n, 1), generator=gen)
        return relabel_finetune(model, data, targets, self.config, seed)
