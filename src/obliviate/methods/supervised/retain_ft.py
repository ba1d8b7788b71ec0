"""Baseline: fine-tune on the retain set only, hoping the forget set fades (catastrophic forgetting).

    obliviate run --config digits --set methods=[retain_ft] --set method_args.retain_ft.epochs=20
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from obliviate.methods.supervised.common import SupervisedUnlearner
from obliviate.supervised.registry import register_supervised
from obliviate.supervised.train import batches, task_loss


class RetainFTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(10, ge=1, description="passes over the retain set")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    batch_size: int = Field(32, ge=1, description="minibatch size")


@register_supervised("retain_ft")
class RetainFT(SupervisedUnlearner):
    config_class = RetainFTConfig

    def unlearn(self, model, data, seed: int = 0):
        c, gen = self.config, torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=c.lr)
        steps = c.epochs * -(-len(data.retain_x) // c.batch_size)
        model.train()
        for _, idx in zip(range(steps), batches(len(data.retain_x), c.batch_size, gen)):
            loss = task_loss(data.kind, model(data.retain_x[idx]), data.retain_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model.eval()
