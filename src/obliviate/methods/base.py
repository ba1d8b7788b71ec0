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

Every method of this loop also gets, from config alone:
- LoRA (`config.lora`, see `methods.lora`): adapters on `lora_targets(model)` when the method
  defines it (module names), else on every linear layer; `self.lora_active` is True in `setup`.
- Early stopping: with `unlearn(..., stop_at=acc)`, every `eval_every` steps the greedy forget
  accuracy on a fixed slice of the forget QA (`validation_slice`) is measured; at or below `acc`
  (the gold model's accuracy on the same slice) the run stops. `facts()` says why it stopped.
- Bad input stops before the target is touched: an empty forget split, a LoRA rank below 1, a loss
  that turns NaN (ObliviateError naming the method, the step and the fix).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Iterator

import torch
from accelerate import PartialState
from pydantic import BaseModel, ConfigDict, Field

from obliviate.config import LoraSettings
from obliviate.data import Benchmark, format_prompt
from obliviate.errors import ObliviateError
from obliviate.methods import lora
from obliviate.models.hf import HFLanguageModel, encode_rows, pad_rows
from obliviate.models.train import NonFiniteLoss, optimize, shard
from obliviate.models.train import log_probs as sharded_log_probs

Part = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # padded (ids, attention mask, labels)


class UnlearnConfig(BaseModel):
    """Settings every weight-space method shares; a method's config subclasses it."""
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(40, ge=1, description="optimizer steps")
    lr: float = Field(1e-3, gt=0, description="learning rate (cosine decay after warm-up)")
    warmup: float = Field(0.1, ge=0, lt=1, description="share of steps spent warming up")
    batch_size: int = Field(32, ge=1, description="forget (and retain) examples per step")
    grad_clip: float = Field(1.0, gt=0, description="max gradient norm")
    lora: LoraSettings | None = Field(None, description="train LoRA adapters instead of all weights, e.g. {r: 8}; "
                                      "None: full-parameter")
    eval_every: int = Field(10, ge=0, description="check forget accuracy on the validation slice every this many "
                            "steps and stop at the gold level; 0: run the whole step budget")
    eval_size: int = Field(32, ge=1, description="forget QA records in the early-stopping validation slice")


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

    def to(self, device) -> "Batch":
        return Batch({name: type(part)(t.to(device) for t in part) for name, part in self.parts.items()})

    def shard(self, rank: int, world: int) -> "Batch":
        """This process's rows of every part (under `accelerate launch`; see `models.train.shard`)."""
        return Batch({name: shard(part, rank, world) for name, part in self.parts.items()})


def retain_examples(bench: Benchmark) -> list[tuple[str, str]]:
    """What a method must keep: the retain split, plus a pretrained model's replayed general answers."""
    return bench.training_examples(("retain",)) + bench.replay_examples()


def validation_slice(bench: Benchmark, size: int = 32) -> list[dict]:
    """A fixed subset of the forget QA: the same records for every method, seed and gold model."""
    return random.Random(0).sample(bench.forget, min(size, len(bench.forget)))


def slice_accuracy(lm: HFLanguageModel, records: list[dict]) -> float:
    """Greedy recall on `records` (`forget_acc`'s check, `evals.qa.answer_recalled`): early stopping
    must watch the same number the report judges, or a method could stop while still saying the value."""
    from obliviate.evals.qa import answer_recalled  # lazy: the evals package imports much

    generated = lm.generate([format_prompt(r["question"]) for r in records])
    return sum(answer_recalled(g, r["answer"]) for g, r in zip(generated, records)) / max(1, len(records))


class Unlearner:
    """Copy the target, then minimise `loss` on batches drawn from the forget and retain splits."""

    config_class: type[UnlearnConfig] = UnlearnConfig
    name = "unlearner"
    uses_reference = False  # True: `self.reference` is a frozen copy of the target during `unlearn`
    # False in a method whose own `unlearn` cannot train through adapters: a LoRA setting for it is
    # refused, and the run-level `lora` skips it.
    supports_lora = True

    def __init__(self, config: UnlearnConfig | None = None):
        self.config = config or self.config_class()
        self.reference = None
        self.lora_active = False
        settings = getattr(self.config, "lora", None)
        if settings is not None and not self.supports_lora:
            raise ObliviateError(f"method '{self.name}' does not support LoRA; "
                                 f"remove lora for it (--set method_args.{self.name}.lora=null)")

    def loss(self, model, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def examples(self, bench: Benchmark) -> dict[str, list[tuple[str, str]]]:
        """(prompt, completion) pools by part name; each step samples `batch_size` rows of each.

        An extra part as long as `forget` is sampled at forget's indices, so a part built from the
        forget pool row by row (e.g. a refusal per forget question) stays aligned with it; `retain`
        and parts of other lengths are sampled independently.
        """
        return {"forget": bench.training_examples(("forget",)), "retain": retain_examples(bench)}

    def setup(self, model, target: HFLanguageModel, bench: Benchmark) -> None:
        """Called once before the first step with the model about to be trained (a copy of the target)."""

    @staticmethod
    def log_probs(model, part: Part) -> tuple[torch.Tensor, torch.Tensor]:
        """(lp, valid) of `part` under `model`: the input of every `methods.losses` function.

        Under `accelerate launch` the rows of all processes are gathered, so the loss is the
        whole batch's on each of them (the distributed step equals the single-process one).
        """
        return sharded_log_probs(model, part)

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

    def unlearn(self, target: HFLanguageModel, bench: Benchmark, seed: int = 0, stop_at: float | None = None
                ) -> HFLanguageModel:
        """A new model unlearned from `target` (left untouched); `stop_at` is the gold model's accuracy
        on `validation_slice(bench)`: reaching it stops the run early (None: the whole budget)."""
        c = self.config
        settings = getattr(c, "lora", None)
        if settings is not None:
            lora.check_rank(settings, self.name)
        tok = target.tokenizer
        pools = {name: encode_rows(tok, [p for p, _ in ex], [a for _, a in ex])
                 for name, ex in self.examples(bench).items()}
        empty = [name for name, rows in pools.items() if not rows]
        if empty:
            raise ObliviateError(f"method '{self.name}': the {' and '.join(empty)} split has no examples; "
                                 "unlearning needs at least one forget and one retain example (check "
                                 "data.forget_fraction, or the benchmark passed in)")
        torch.manual_seed(seed)
        model = copy.deepcopy(target.model)
        self.lora_active = settings is not None
        if self.lora_active:
            targets = self.lora_targets(model) if hasattr(self, "lora_targets") else "all-linear"
            model = lora.attach(model, settings, targets)
        if self.uses_reference:
            device = PartialState(cpu=not torch.cuda.is_available()).device  # where `optimize` puts the model
            self.reference = copy.deepcopy(target.model).to(device).eval().requires_grad_(False)
        self.setup(model, target, bench)
        lr = c.lr * (settings.lr_scale if settings is not None else 1.0)
        self.stopped, self.checks = "budget", []
        on_step = None
        if stop_at is not None and getattr(c, "eval_every", 0):
            on_step = self._early_stop(model, tok, validation_slice(bench, c.eval_size), stop_at)
        try:
            batches = self._batches(pools, tok.pad_token_id, model.device, random.Random(seed))
            self.losses = optimize(model, self.loss, batches, c.steps, lr, c.warmup, 0.0, c.grad_clip,
                                   desc=f"unlearning: {self.name}", on_step=on_step)
        except NonFiniteLoss as err:
            raise ObliviateError(
                f"method '{self.name}': the loss became {err.value} at step {err.step} of {err.total}; "
                f"lower the learning rate (lr {err.lr:g}, e.g. --set method_args.{self.name}.lr={c.lr / 10:g}); "
                "the target model is unchanged") from None
        finally:
            self.reference = None
        if self.lora_active:
            return lora.finish(model, settings, tok, self.name)
        return HFLanguageModel(model, tok, name=self.name)

    def _early_stop(self, model, tok, records: list[dict], stop_at: float):
        """`on_step` for `optimize`: every `eval_every` steps, stop once slice accuracy <= `stop_at`."""
        every = self.config.eval_every

        def check(step: int, loss: float) -> bool:
            if (step + 1) % every:
                return False
            model.eval()
            acc = slice_accuracy(HFLanguageModel(model, tok), records)
            model.train()
            self.checks.append({"step": step + 1, "forget_slice_acc": acc})
            if acc <= stop_at:
                self.stopped = "gold level"
                return True
            return False

        return check

    def facts(self) -> dict:
        """What the report records about the last `unlearn` call: steps used and why it stopped."""
        losses = getattr(self, "losses", [])
        settings = getattr(self.config, "lora", None)
        return {"steps": len(losses), "budget": getattr(self.config, "steps", None),
                "stopped": getattr(self, "stopped", "budget"), "checks": getattr(self, "checks", []),
                "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
                "lora": settings.model_dump() if settings is not None else None}
