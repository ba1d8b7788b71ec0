"""The one training loop (target, gold, blindspot model) and the task losses every method shares."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def task_loss(kind: str, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Squared error on standardised targets (regression) or cross-entropy (classification)."""
    if kind == "regression":
        loss = (out - y).pow(2).sum(1)
        return loss.mean() if reduction == "mean" else loss
    return F.cross_entropy(out, y, reduction=reduction)


def batches(n: int, batch_size: int, generator: torch.Generator):
    """Endless shuffled index batches over range(n), reshuffled each pass."""
    while True:
        order = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            yield order[i:i + batch_size]


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str, epochs: int, lr: float, batch_size: int,
        weight_decay: float, seed: int) -> nn.Module:
    """Adam on minibatches for `epochs` passes over (x, y); the shuffling is seeded."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * -(-len(x) // batch_size)
    model.train()
    for _, idx in zip(range(steps), batches(len(x), batch_size, gen)):
        loss = task_loss(kind, model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model
