"""What the supervised methods share: the base class and the relabel-and-fine-tune loop."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from obliviate.supervised.train import batches, task_loss

BOTH = frozenset({"regression", "classification"})


class FinetuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(10, ge=1, description="passes over the retain set")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    batch_size: int = Field(32, ge=1, description="minibatch size (retain and forget batches alike)")
    forget_weight: float = Field(1.0, ge=0, description="weight of the forget term against the retain loss")


class SupervisedUnlearner:
    """Turns a trained model into one that has forgotten `data.forget_x`; subclasses set the class facts.

    `unlearn(model, data, seed)` changes `model` in place and returns it. `data` is an UnlearnData,
    or its label-free view for methods whose `uses_labels` is False.
    """

    config_class: type[BaseModel] = FinetuneConfig
    tasks: frozenset[str] = BOTH  # the task kinds the method applies to

    def __init__(self, config: BaseModel | None = None) -> None:
        self.config = config if config is not None else self.config_class()

    @property
    def uses_labels(self) -> bool:
        return True

    def unlearn(self, model: nn.Module, data, seed: int = 0) -> nn.Module:
        raise NotImplementedError


def relabel_finetune(model: nn.Module, data, forget_targets: torch.Tensor, cfg: FinetuneConfig, seed: int
                     ) -> nn.Module:
    """Fine-tune on retain with its labels plus forget with substitute targets (random, Gaussian)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = cfg.epochs * -(-len(data.retain_x) // cfg.batch_size)
    retain, forget = batches(len(data.retain_x), cfg.batch_size, gen), batches(len(data.forget_x), cfg.batch_size, gen)
    model.train()
    for _, r, f in zip(range(steps), retain, forget):
        loss = (task_loss(data.kind, model(data.retain_x[r]), data.retain_y[r])
                + cfg.forget_weight * task_loss(data.kind, model(data.forget_x[f]), forget_targets[f]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model
