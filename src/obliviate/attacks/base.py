"""What every attack shares: its settings, its result, weight access and the untouched-model check.

An attack is a function `attack(lm, bench, settings) -> Recovery`: the per-item recovery (1 = the
forgotten answer came back) of one model under that attack. The verdict runs every attack on the
candidate and on gold with the same settings and compares the two (`verdict.py`); an attack never
judges a model on its own.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field

import torch

from obliviate.config import AttackConfig  # noqa: F401  (re-exported for attack modules)
from obliviate.errors import ObliviateError
from obliviate.registry import Registry

ATTACKS: Registry = Registry("attack")
register_attack = ATTACKS.register


@dataclass
class Recovery:
    """One model under one attack: per-item scores on the forget set, grouped by person."""
    scores: list[float]
    people: list[str]
    details: dict = field(default_factory=dict)  # e.g. the probe's per-layer accuracy

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else float("nan")


class AttackSkipped(Exception):
    """The attack cannot run on this model (e.g. it needs weights and the model is a black box)."""


def weights_of(lm) -> torch.nn.Module:
    """The model's torch module, or AttackSkipped for models that do not expose weights."""
    module = getattr(lm, "model", None)
    if getattr(lm, "changes_weights", True) is False or not isinstance(module, torch.nn.Module):
        raise AttackSkipped(f"needs the model's weights; {getattr(lm, 'name', 'this model')} is a black-box "
                            "inference-time wrapper, so there are none of its own to attack")
    return module


def clone(lm, name: str):
    """A deep copy of an HF-backed `LanguageModel`: weight attacks work on it, never on `lm`."""
    weights_of(lm)
    twin = copy.copy(lm)
    twin.model, twin.name = copy.deepcopy(lm.model), name
    return twin


def checksum(lm) -> str | None:
    """SHA-256 over the model's parameters and buffers (None for models without weights)."""
    try:
        module = weights_of(lm)
    except AttackSkipped:
        return None
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool
                 else t.cpu().numpy().tobytes())
    return h.hexdigest()


def check_untouched(lm, before: str | None, attack: str) -> None:
    if before is not None and checksum(lm) != before:
        raise ObliviateError(f"attack {attack!r} changed the weights of {lm.name} in place; attacks must work on "
                             "a copy (obliviate.attacks.base.clone) — this is a bug in the attack")
