"""One result type for every metric: the aggregate, the per-example values and the good direction."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MetricResult:
    """A metric's value over a split, its per-example values and which way is good.

    `higher_is_better`: True (up is good), False (down is good) or None (closer to the gold,
    retrained-without-the-forget-set model is good: forgetting can overshoot, too).
    """

    name: str
    value: float | None  # None: not measurable for this model; the description says why
    per_example: list[float]
    higher_is_better: bool | None
    description: str

    def to_dict(self) -> dict:
        return {"name": self.name, "value": None if self.value is None else float(self.value), "per_example": [float(x) for x in self.per_example],
                "higher_is_better": self.higher_is_better, "description": self.description}
