"""Typed settings of the tiny model and of training (kept free of torch so the CLI starts fast)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TinyModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vocab_size: int = Field(2048, ge=300, description="BPE vocabulary trained on the benchmark text")
    hidden_size: int = Field(128, ge=8, description="width of the residual stream")
    layers: int = Field(4, ge=1, description="transformer blocks")
    heads: int = Field(4, ge=1, description="attention heads (must divide hidden_size)")
    intermediate_size: int = Field(512, ge=8, description="MLP width")
    init_std: float = Field(0.08, gt=0, description="std of the weight init; 0.08 memorises ~3x faster than 0.02")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(10, ge=1, description="passes over the training examples")
    lr: float = Field(3e-3, gt=0, description="peak learning rate")
    batch_size: int = Field(32, ge=1, description="examples per optimizer step")
    warmup: float = Field(0.05, ge=0, lt=1, description="share of steps spent warming up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    grad_clip: float = Field(1.0, gt=0, description="max gradient norm")
    tokens_per_example: int = Field(
        10, ge=1, description="an example with n > this many completion tokens weighs n / this in the loss "
        "(a ten-fact biography counts as about ten QA examples, not one)")


class PretrainedSettings(BaseModel):
    """A real pretrained model fine-tuned into the target and gold (instead of tiny models from scratch).

    The run's `train` settings drive the fine-tuning; world facts are left out of it, so the
    world metrics measure the model's own pretrained knowledge.
    """

    model_config = ConfigDict(extra="forbid")
    model: str = Field("smollm2-135m-instruct", description="packaged name, local Hugging Face directory or .gguf file")
    dtype: str = Field("float32", description="weights dtype: float32, bfloat16 or float16")
    lora_r: int | None = Field(16, ge=1, description="LoRA rank of the fine-tuning (merged afterwards); "
                               "None: full fine-tuning")
    lora_alpha: float | None = Field(None, gt=0, description="LoRA alpha; None uses 2 * lora_r")
    phrasings: int = Field(1, ge=1, le=3, description="trained phrasings per question (fewer: faster fine-tuning)")
    bios: bool = Field(False, description="also train on the biographies (plain text)")
    replay: int = Field(24, ge=0, description="replay the untouched model's own answers (up to this many tokens) "
                        "to general questions in fine-tuning and in every method's retain data; 0: none")
    replay_loss: Literal["kl", "nll"] = Field(
        "kl", description="how fine-tuning keeps the replayed answers: 'kl' holds the untouched model's next-token "
        "distributions along them (KL, `models.train.Anchors`), 'nll' trains on them as text")
    replay_weight: float = Field(4.0, gt=0, description="weight of the KL replay term (replay_loss='kl')")
