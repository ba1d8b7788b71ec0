"""Task vector negation: subtract what extra training on the forget set adds. θ_new = θ − α·(θ_reinforced − θ).

Ilharco et al. 2023, "Editing Models with Task Arithmetic" (arXiv 2212.04089), with the
"reinforced model" of Eldan & Russinovich 2023, "Who's Harry Potter?" (arXiv 2310.02238): a copy
of the target is fine-tuned further on the forget set (NLL, `reinforce_steps` at `reinforce_lr`),
and the direction it moved in is negated and applied to the target. The reinforcement runs
through the shared loop, so `steps` and `lr` always equal `reinforce_steps` and `reinforce_lr`.

    obliviate run --set methods=[task_vector] --set method_args.task_vector.alpha=2
"""

import torch
from pydantic import Field, model_validator

from obliviate.data import Benchmark
from obliviate.errors import ObliviateError
from obliviate.methods import losses
from obliviate.methods.base import UnlearnConfig, Unlearner
from obliviate.models.hf import HFLanguageModel
from obliviate.registry import register_method


class TaskVectorConfig(UnlearnConfig):
    # Does NOT meet the issue-5 bar on tiny (10 % forget): forget and retain people share their format,
    # so the negated vector removes both together. Defaults: the largest α keeping retain within the bar
    # (Ilharco et al. pick α on held-out control accuracy): forget 99 % -> 62 %, retain 98 % -> 89 %,
    # world 100 % (old 40 steps, α 1: 83 / 93 / 100). Same 120 steps, α 2: 24 / 80 / 98; α 3: 3 / 59 / 90;
    # reinforce_lr 3e-3, α 2: 1 / 31 / 65.
    reinforce_steps: int = Field(120, ge=1, description="fine-tuning steps of the reinforced copy on forget")
    reinforce_lr: float = Field(1e-3, gt=0, description="learning rate of the reinforcement")
    alpha: float = Field(1.25, description="scale α of the negated task vector (0 returns the target)")

    @model_validator(mode="after")
    def _mirror_reinforcement(self) -> "TaskVectorConfig":
        for shared, own in (("steps", "reinforce_steps"), ("lr", "reinforce_lr")):
            if shared in self.model_fields_set and getattr(self, shared) != getattr(self, own):
                raise ValueError(f"task_vector trains its reinforced copy for reinforce_steps at reinforce_lr; "
                                 f"set {own} instead of {shared} (got {shared}={getattr(self, shared)})")
        # The shared loop reads steps and lr; through __dict__ so they do not count as set by the user.
        self.__dict__.update(steps=self.reinforce_steps, lr=self.reinforce_lr)
        return self


@register_method("task_vector")
class TaskVector(Unlearner):
    config_class = TaskVectorConfig
    name = "task_vector"

    def examples(self, bench: Benchmark) -> dict[str, list[tuple[str, str]]]:
        return {"forget": bench.training_examples(("forget",))}

    def loss(self, model, batch):
        return losses.mean_nll(*self.log_probs(model, batch.forget))  # reinforcement: learn forget better

    def unlearn(self, target: HFLanguageModel, bench: Benchmark, seed: int = 0) -> HFLanguageModel:
        # No `stop_at`: early stopping watches forget accuracy fall, and reinforcement raises it.
        lora = self.config.lora
        if lora is not None and not lora.merge:
            raise ObliviateError("task_vector subtracts full weights, so its LoRA adapters must be merged; "
                                 "set method_args.task_vector.lora.merge=true")
        reinforced = super().unlearn(target, bench, seed)  # a trained copy; target untouched
        theta, moved = target.model.state_dict(), reinforced.model.state_dict()
        if theta.keys() != moved.keys():
            raise ObliviateError(f"task_vector: the reinforced model's weights do not match the target's "
                                 f"({len(moved)} vs {len(theta)} tensors); the target model is unchanged")
        alpha, done = self.config.alpha, set()
        with torch.no_grad():
            for name, value in moved.items():  # in place on the copy: θ_r ← θ − α·(θ_r − θ)
                # tied weights (embeddings = output layer) appear twice: update their storage once
                if value.is_floating_point() and value.data_ptr() not in done:
                    done.add(value.data_ptr())
                    value.copy_(theta[name] - alpha * (value - theta[name]))
        reinforced.name = self.name
        return reinforced
