"""The shared unlearning loop. A method subclasses `Unlearner` and overrides `loss` only.

    from obliviate.methods import METHODS
    method = METHODS.get("gradient_difference")(config)     # config: the method's config_class
    candidate = method.unlearn(target, bench, seed=0)       # a new LanguageModel; target untouched
"""

from __future__ import annotations

import copy
import random
from typing import Iterator

import torch
from pydantic import BaseModel, ConfigDict, Field

from obliviate.data import Benchmark
from obliviate.models.hf import HFLanguageModel, encode_rows, pad_rows, token_log_probs
from obliviate.models.train import optimize


class UnlearnConfig(BaseModel):
    """Settings every weight-space method shares; a method's config subclasses it."""
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(40, ge=1, description="optimizer steps")
    lr: float = Field(1e-3, gt=0, description="learning rate (cosine decay after warm-up)")
    warmup: float = Field(0.1, ge=0, lt=1, description="share of steps spent warming up")
    batch_size: int = Field(32, ge=1, description="forget (and retain) examples per step")
    grad_clip: float = Field(1.0, gt=0, description="max gradient norm")


class Unlearner:
    """Copy the target, then minimise `loss` on batches drawn from the forget and retain splits."""

    config_class: type[UnlearnConfig] = UnlearnConfig
    name = "unlearner"

    def __init__(self, config: UnlearnConfig | None = None):
        self.config = config or self.config_class()

    def loss(self, model, forget: tuple[torch.Tensor, torch.Tensor], retain: tuple[torch.Tensor, torch.Tensor]
             ) -> torch.Tensor:
        """`forget` and `retain` are (lp, valid) pairs from `token_log_probs` for this step's batches."""
        raise NotImplementedError

    def _batches(self, rows, other, pad_id: int, rng: random.Random) -> Iterator:
        bs = self.config.batch_size
        while True:
            yield (pad_rows(rng.sample(rows, min(bs, len(rows))), pad_id),
                   pad_rows(rng.sample(other, min(bs, len(other))), pad_id))

    def unlearn(self, target: HFLanguageModel, bench: Benchmark, seed: int = 0) -> HFLanguageModel:
        torch.manual_seed(seed)
        model, tok = copy.deepcopy(target.model), target.tokenizer
        forget = encode_rows(tok, *zip(*bench.training_examples(("forget",))))
        retain = encode_rows(tok, *zip(*bench.training_examples(("retain",))))

        def step_loss(m, batch):
            (f, r) = batch
            f_out = token_log_probs(m, *(t.to(m.device) for t in f))
            r_out = token_log_probs(m, *(t.to(m.device) for t in r))
            return self.loss(m, f_out, r_out)

        c = self.config
        self.losses = optimize(model, step_loss, self._batches(forget, retain, tok.pad_token_id, random.Random(seed)),
                               c.steps, c.lr, c.warmup, 0.0, c.grad_clip, desc=f"unlearning: {self.name}")
        return HFLanguageModel(model, tok, name=self.name)

    def facts(self) -> dict:
        """What the report records about the last `unlearn` call."""
        losses = getattr(self, "losses", [])
        return {"steps": len(losses), "first_loss": losses[0] if losses else None,
                "last_loss": losses[-1] if losses else None}
