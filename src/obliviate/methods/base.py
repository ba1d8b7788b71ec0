"""The shared unlearning loop. A method subclasses `Unlearner` and overrides `loss` (and, if it
needs them, `setup` or `examples`).

    from obliviate.methods import METHODS
    method = METHODS.get("gradient_difference")(config)     # config: the method's config_class
    candidate = method.unlearn(target, bench, seed=0)       # a new LanguageModel; target untouched

Each step `loss(model, batch)` gets a `Batch` of padded (ids, mask, labels) tensors on the model's
device: `batch.forget` and `batch.retain` always, plus any extra parts `examples` returned (e.g.
`batch.parts["refusal"]` for a preference method). `self.log_probs(model, part)` gives the
(lp, valid) pair every function of `methods.losses` takes. With `uses_reference = True`,
`self.reference` is a frozen copy of the target (for KL or NPO's reference log-probs).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Iterator

import torch
from pydantic import BaseModel, ConfigDict, Field

from obliviate.data import Benchmark
from obliviate.models.hf import HFLanguageModel, encode_rows, pad_rows, token_log_probs
from obliviate.models.train import optimize

Part = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # padded (ids, attention mask, labels)


class UnlearnConfig(BaseModel):
    """Settings every weight-space method shares; a method's config subclasses it."""
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(40, ge=1, description="optimizer steps")
    lr: float = Field(1e-3, gt=0, description="learning rate (cosine decay after warm-up)")
    warmup: float = Field(0.1, ge=0, lt=1, description="share of steps spent warming up")
    batch_size: int = Field(32, ge=1, description="forget (and retain) examples per step")
    grad_clip: float = Field(1.0, gt=0, description="max gradient norm")


@dataclass
class Batch:
    """One step's padded parts, keyed by name; `forget` and `retain` are always present."""
    parts: dict[str, Part]

    @property
    def forget(self) -> Part:
        return self.parts["forget"]

    @property
    def retain(self) -> Part:
        return self.parts["retain"]


class Unlearner:
    """Copy the target, then minimise `loss` on batches drawn from the forget and retain splits."""

    config_class: type[UnlearnConfig] = UnlearnConfig
    name = "unlearner"
    uses_reference = False  # True: `self.reference` is a frozen copy of the target during `unlearn`

    def __init__(self, config: UnlearnConfig | None = None):
        self.config = config or self.config_class()
        self.reference = None

    def loss(self, model, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def examples(self, bench: Benchmark) -> dict[str, list[tuple[str, str]]]:
        """(prompt, completion) pools by part name; each step samples `batch_size` rows of each.

        An extra part as long as `forget` is sampled at forget's indices, so a part built from the
        forget pool row by row (e.g. a refusal per forget question) stays aligned with it; `retain`
        and parts of other lengths are sampled independently.
        """
        return {"forget": bench.training_examples(("forget",)), "retain": bench.training_examples(("retain",))}

    def setup(self, model, target: HFLanguageModel, bench: Benchmark) -> None:
        """Called once before the first step with the model about to be trained (a copy of the target)."""

    @staticmethod
    def log_probs(model, part: Part) -> tuple[torch.Tensor, torch.Tensor]:
        """(lp, valid) of `part` under `model`: the input of every `methods.losses` function."""
        return token_log_probs(model, *part)

    def _batches(self, pools: dict[str, list], pad_id: int, device, rng: random.Random) -> Iterator[Batch]:
        bs = self.config.batch_size
        while True:
            draw = {name: rng.sample(range(len(rows)), min(bs, len(rows))) for name, rows in pools.items()}
            parts = {}
            for name, rows in pools.items():
                aligned = name != "retain" and len(rows) == len(pools["forget"])
                idx = draw["forget"] if aligned else draw[name]
                parts[name] = tuple(t.to(device) for t in pad_rows([rows[i] for i in idx], pad_id))
            yield Batch(parts)

    def unlearn(self, target: HFLanguageModel, bench: Benchmark, seed: int = 0) -> HFLanguageModel:
        torch.manual_seed(seed)
        model, tok = copy.deepcopy(target.model), target.tokenizer
        pools = {name: encode_rows(tok, [p for p, _ in ex], [c for _, c in ex])
                 for name, ex in self.examples(bench).items()}
        if self.uses_reference:
            self.reference = copy.deepcopy(target.model).eval().requires_grad_(False)
        self.setup(model, target, bench)
        c = self.config
        try:
            batches = self._batches(pools, tok.pad_token_id, model.device, random.Random(seed))
            self.losses = optimize(model, self.loss, batches, c.steps, c.lr, c.warmup, 0.0, c.grad_clip,
                                   desc=f"unlearning: {self.name}")
        finally:
            self.reference = None
        return HFLanguageModel(model, tok, name=self.name)

    def facts(self) -> dict:
        """What the report records about the last `unlearn` call."""
        losses = getattr(self, "losses", [])
        return {"steps": len(losses), "first_loss": losses[0] if losses else None,
                "last_loss": losses[-1] if losses else None}
