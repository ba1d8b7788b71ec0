"""Baseline: gradient ascent on the forget set's loss (Thudi et al. 2022, arXiv 2109.13398), no retain term.

Loss: -L(forget, y) for a fixed budget of steps; unbounded, so it is run briefly.

    obliviate run --config digits --set methods=[gradient_ascent] --set method_args.gradient_ascent.steps=20
"""

from __future__ import annotations

import torch
from pydantic import Field

from obliviate.methods.supervised.common import StepConfig, SupervisedUnlearner, optimise
from obliviate.supervised.registry import register_supervised
from obliviate.supervised.train import batches, task_loss


class GradientAscentConfig(StepConfig):
    steps: int = Field(20, ge=1, description="ascent steps on forget minibatches")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate")


@register_supervised("gradient_ascent")
class GradientAscent(SupervisedUnlearner):
    config_class = GradientAscentConfig

    def unlearn(self, model, data, seed: int = 0):
        c, gen = self.config, torch.Generator().manual_seed(seed)
        ascent = lambda f: -task_loss(data.kind, model(data.forget_x[f]), data.forget_y[f])  # noqa: E731
        return optimise(model, c.lr, c.steps, ascent, batches(len(data.forget_x), c.batch_size, gen))
