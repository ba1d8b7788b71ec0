"""What the supervised methods share: the base class, the step-budget configs and the one Adam loop.

Every method here is "Adam on a loss over minibatches for a budget of steps"; they differ only in
the loss and in which sets the minibatches come from. `optimise` holds that loop once:

    optimise(model, lr, steps, lambda r: task_loss(kind, model(x[r]), y[r]), batches(len(x), 32, gen))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from obliviate.supervised.train import batches, task_loss

BOTH = frozenset({"regression", "classification"})


class StepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    batch_size: int = Field(32, ge=1, description="minibatch size (retain and forget batches alike)")


class RetainConfig(StepConfig):
    epochs: int = Field(10, ge=1, description="passes over the retain set")


class FinetuneConfig(RetainConfig):
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


def steps_for(epochs: int, n: int, batch_size: int) -> int:
    """Optimiser steps in `epochs` passes over n samples."""
    return epochs * -(-n // batch_size)


def optimise(model: nn.Module, lr: float, steps: int, loss_fn: Callable[..., torch.Tensor],
             *streams: Iterator[torch.Tensor], params: Iterable[nn.Parameter] | None = None) -> nn.Module:
    """Adam (on `params`, default all of the model's) for `steps` steps; each step takes one index batch
    from every stream and minimises loss_fn(*those batches). Returns the model in eval mode."""
    opt = torch.optim.Adam(model.parameters() if params is None else params, lr=lr)
    model.train()
    for _, *idx in zip(range(steps), *streams):
        loss = loss_fn(*idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def retain_plus_forget(model: nn.Module, data, forget_loss: Callable[[torch.Tensor], torch.Tensor],
                       cfg: FinetuneConfig, seed: int) -> nn.Module:
    """Each step: the task loss on a retain batch plus forget_weight times forget_loss(forget indices);
    `epochs` passes over retain, the (usually smaller) forget set cycled alongside."""
    gen = torch.Generator().manual_seed(seed)
    retain, forget = batches(len(data.retain_x), cfg.batch_size, gen), batches(len(data.forget_x), cfg.batch_size, gen)

    def loss(r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return task_loss(data.kind, model(data.retain_x[r]), data.retain_y[r]) + cfg.forget_weight * forget_loss(f)

    return optimise(model, cfg.lr, steps_for(cfg.epochs, len(data.retain_x), cfg.batch_size), loss, retain, forget)


def relabel_finetune(model: nn.Module, data, forget_targets: torch.Tensor, cfg: FinetuneConfig, seed: int
                     ) -> nn.Module:
    """Fine-tune on retain with its labels plus forget with substitute targets (random, Gaussian)."""
    return retain_plus_forget(
        model, data, lambda f: task_loss(data.kind, model(data.forget_x[f]), forget_targets[f]), cfg, seed)


def fit_pairs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str, cfg: RetainConfig, seed: int
              ) -> nn.Module:
    """Plain fine-tuning: `epochs` shuffled passes over (x, y) with the task loss."""
    gen = torch.Generator().manual_seed(seed)
    return optimise(model, cfg.lr, steps_for(cfg.epochs, len(x), cfg.batch_size),
                    lambda i: task_loss(kind, model(x[i]), y[i]), batches(len(x), cfg.batch_size, gen))
