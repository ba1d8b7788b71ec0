"""The supervised run config, selected by a `task:` key in the YAML (regression.yaml, digits.yaml).

    from obliviate.config import load_config
    cfg = load_config("digits", ["methods=[laf,retain_ft]", "method_args.laf.epochs=30"])
    cfg.method_config("laf")   # LAFConfig with the preset's and the override's values

Same rules as the language-model RunConfig: defaults < preset < `--set`, unknown keys are errors
with a did-you-mean, bad values raise ObliviateError naming the key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from obliviate.errors import ObliviateError


class SyntheticSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    groups: int = Field(5, ge=2, description="groups side by side along feature 0, each with its own slope")
    per_group: int = Field(400, ge=10, description="samples per group (train and test together)")
    features: int = Field(8, ge=5, description="input features")
    noise: float = Field(0.3, ge=0, description="standard deviation of the target noise")


class ForgetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["random", "group"] = Field("random", description="random train samples, or every train "
                                             "sample of one group (synthetic) or class (digits)")
    fraction: float = Field(0.1, gt=0, lt=1, description="share of the train samples forgotten (kind=random)")
    group: int = Field(0, ge=0, description="the group or class forgotten (kind=group)")


class NetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: list[int] = Field([128, 128], min_length=1, description="widths of the MLP's hidden layers")


class FitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(200, ge=1, description="passes over the training data (target and gold alike)")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    batch_size: int = Field(32, ge=1, description="minibatch size")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay")


class SupervisedRunConfig(BaseModel):
    """Everything `obliviate run` needs for a supervised (non-text) unlearning run."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("supervised", description="run name; results go to <output_dir>/<name>/")
    seed: int = Field(0, description="seed of the split, the initialisations, training and unlearning")
    output_dir: str = Field("runs", description="directory holding one sub-directory per run")
    task: Literal["synthetic", "diabetes", "digits"] = Field(..., description="the built-in task: synthetic and "
                                                             "diabetes are regression, digits classification")
    test_fraction: float = Field(0.4, gt=0, lt=1, description="share of samples held out for testing")
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings, description="the synthetic task")
    forget: ForgetSettings = Field(default_factory=ForgetSettings, description="what is forgotten")
    model: NetSettings = Field(default_factory=NetSettings, description="the MLP")
    train: FitSettings = Field(default_factory=FitSettings, description="training of target and gold")
    methods: list[str] = Field(["retain_ft"], description="supervised unlearning methods to run, by name")
    method_args: dict[str, dict] = Field(default_factory=dict, description="per-method settings, "
                                         "e.g. {blindspot: {epochs: 20}}")
    threads: int | None = Field(1, ge=1, description="torch CPU threads (small models: 1 is fastest)")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        from obliviate.config import _NAME

        if not _NAME.fullmatch(v):
            raise ValueError(f"name must be a plain directory name (letters, digits, . _ -), got {v!r}")
        return v

    @field_validator("methods", mode="before")
    @classmethod
    def _split_methods(cls, v: Any) -> Any:
        return [m.strip() for m in v.split(",") if m.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check_methods(self) -> "SupervisedRunConfig":
        from obliviate.config import check_keys, validation_message
        from obliviate.supervised.registry import supervised_methods

        registry, kind = supervised_methods(), task_kind(self.task)
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods lists a method twice: {self.methods}; list each once")
        for name in self.methods:
            tasks = registry.get(name).tasks
            if kind not in tasks:
                raise ValueError(f"method '{name}' works on {' and '.join(sorted(tasks))} tasks, and task "
                                 f"'{self.task}' is {kind}; drop it from methods")
        for name, args in self.method_args.items():
            cls = registry.get(name).config_class
            check_keys(args, cls, f"method_args.{name}.")
            try:
                cls(**args)
            except ValidationError as err:
                raise ObliviateError(validation_message(err, f"method_args.{name}.")) from None
        return self

    def method_config(self, name: str) -> BaseModel:
        from obliviate.supervised.registry import supervised_methods

        return supervised_methods().get(name).config_class(**self.method_args.get(name, {}))


def task_kind(task: str) -> str:
    return "classification" if task == "digits" else "regression"


def build_supervised_config(raw: dict) -> SupervisedRunConfig:
    """A SupervisedRunConfig from a raw dict (YAML + overrides); user errors raise ObliviateError."""
    from obliviate.config import check_keys, validation_message

    check_keys(raw, SupervisedRunConfig)
    try:
        return SupervisedRunConfig(**raw)
    except ValidationError as err:
        raise ObliviateError(validation_message(err)) from None


def supervised_raw(path, overrides=()) -> dict | None:
    """The raw config dict (YAML < overrides) when it names a supervised `task:`, else None."""
    from obliviate.config import _read_yaml, _set_dotted, parse_override, resolve_config_path

    raw: dict = {} if path is None else _read_yaml(resolve_config_path(path), str(path))
    for text in overrides:
        parts, value = parse_override(text)
        _set_dotted(raw, parts, value, text)
    return raw if "task" in raw else None


def load_supervised_config(path, overrides=()) -> SupervisedRunConfig:
    """Like `obliviate.config.load_config`, for a config with a `task:` key (e.g. the regression preset)."""
    raw = supervised_raw(path, overrides)
    if raw is None:
        raise ObliviateError(f"config '{path}' names no supervised task; add e.g. 'task: digits' "
                             "(synthetic, diabetes or digits) or use a language-model preset with load_config")
    return build_supervised_config(raw)
