"""What an unlearning method sees: the forget and retain inputs, and (unless withheld) their labels.

    data = UnlearnData.from_task(task)
    data.label_free()     # same inputs; reading retain_y or forget_y raises ObliviateError

Label-agnostic methods (laf) are handed the label-free view, so a label read is an error, not a leak.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from obliviate.errors import ObliviateError


@dataclass(frozen=True)
class UnlearnData:
    kind: str  # "regression" or "classification"
    n_outputs: int
    retain_x: torch.Tensor
    forget_x: torch.Tensor
    retain_y: torch.Tensor
    forget_y: torch.Tensor

    @classmethod
    def from_task(cls, task) -> "UnlearnData":
        return cls(task.kind, task.n_outputs, task.retain.x, task.forget.x, task.retain.y, task.forget.y)

    def label_free(self) -> "LabelFreeData":
        return LabelFreeData(self.kind, self.n_outputs, self.retain_x, self.forget_x)


@dataclass(frozen=True)
class LabelFreeData:
    """Inputs only: any attempt to read a label raises."""

    kind: str
    n_outputs: int
    retain_x: torch.Tensor
    forget_x: torch.Tensor

    @property
    def retain_y(self) -> torch.Tensor:
        raise ObliviateError("retain labels are withheld from a label-free method; "
                             "set the method's repair_epochs=0 or give it labelled data")

    @property
    def forget_y(self) -> torch.Tensor:
        raise ObliviateError("forget labels are withheld from a label-free method")
