"""A small MLP whose hidden activations are open to the methods that need them (blindspot, laf)."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """`body` (the representation extractor: Linear + ReLU blocks) then a linear `head`.

        model = MLP(64, [128, 64], 10)
        logits = model(x); acts = model.hidden(x)   # one (n, width) tensor per hidden layer
    """

    def __init__(self, n_in: int, hidden: list[int], n_out: int) -> None:
        super().__init__()
        widths = [n_in, *hidden]
        self.body = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.head = nn.Linear(widths[-1], n_out)

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        acts = []
        for layer in self.body:
            x = torch.relu(layer(x))
            acts.append(x)
        return acts

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_model(n_in: int, hidden: list[int], n_out: int, seed: int) -> MLP:
    torch.manual_seed(seed)
    return MLP(n_in, hidden, n_out)
