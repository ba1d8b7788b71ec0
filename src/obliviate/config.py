"""The run config: one pydantic model, loaded from defaults < YAML file < `--set key=value`.

    from obliviate.config import load_config
    cfg = load_config("micro", ["train.lr=1e-3", "methods=[gradient_ascent]",
                                "method_args.gradient_ascent.lr=1e-4"])
    cfg.method_config("gradient_ascent")   # the method's typed config, defaults filled in

`load_config` takes a YAML path or the name of a preset shipped in `obliviate/configs/`
(the single source of presets). Every user mistake raises ObliviateError with a one-line
message that names the input and the fix; unknown keys get a "did you mean".
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from obliviate.data.benchmark import DataConfig
from obliviate.errors import ObliviateError
from obliviate.models.settings import PretrainedSettings, TinyModelConfig, TrainConfig
from obliviate.registry import METHODS, Registry, did_you_mean

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def _method_registry() -> Registry:
    """The method registry, filled: built-in methods register themselves on import."""
    import obliviate.methods  # noqa: F401  (lazy: importing it registers the built-in methods)

    return METHODS


class EvalConfig(BaseModel):
    """What the evaluation covers beyond the per-model metrics (MUSE curves, attack settings)."""

    model_config = ConfigDict(extra="forbid")
    curves: bool = Field(True, description="run the scalability and sustainability curves (`run --quick` skips them)")
    scalability_fractions: list[float] = Field([0.01, 0.05], description="smaller forget fractions to unlearn "
                                               "besides data.forget_fraction (people nested in the forget split)")
    sustainability_requests: int = Field(4, ge=1, description="sequential forget requests the forget split is cut into")
    mia_k: float = Field(0.2, gt=0, le=1, description="share of lowest-probability tokens for Min-K% / Min-K%++")
    privleak_k: float = Field(0.4, gt=0, le=1, description="Min-K% share behind PrivLeak (MUSE uses 0.4)")
    verbmem_prefix_words: int = Field(
        2, ge=1, description="biography words given as the VerbMem prompt (built-in biographies start with "
        "the 2-word name, then only values follow)")
    world_choices: int | None = Field(None, ge=0, description="built-in world-fact multiple-choice questions per "
                                      "kind (capitals, symbols, sums) behind world_mc_acc; None: all, 0: off")
    forget_choice_files: dict[str, str] = Field(default_factory=dict, description="name -> WMDP-style "
                                                "multiple-choice file of knowledge to forget (mc_<name>_acc, lower is better)")
    utility_choice_files: dict[str, str] = Field(default_factory=dict, description="name -> MMLU-style "
                                                 "multiple-choice file of knowledge to keep (mc_<name>_acc)")

    @field_validator("scalability_fractions")
    @classmethod
    def _fractions_open_interval(cls, v: list[float]) -> list[float]:
        bad = [f for f in v if not 0 < f < 1]
        if bad:
            raise ValueError(f"scalability_fractions must lie in (0, 1), got {bad}; e.g. [0.01, 0.05]")
        return v


class AttackConfig(BaseModel):
    """Knobs of the attacks (`--set attacks.relearn_steps=20`)."""
    model_config = ConfigDict(extra="forbid")
    names: list[str] = Field(["relearning", "in_context", "paraphrase", "translation", "many_shot", "masking",
                              "role_play", "quantization_int8", "quantization_4bit", "probe"],
                             description="attacks to run, by registered name")
    relearn_fraction: float = Field(0.25, gt=0, lt=1, description="share of each forget person's facts relearned")
    relearn_steps: int = Field(10, ge=1, description="fine-tuning steps of the relearning attack")
    relearn_lr: float = Field(1e-3, gt=0, description="learning rate of the relearning attack")
    many_shot: int = Field(8, ge=1, description="retain question-answer pairs in the many-shot prefix")
    probe_attribute: str = Field("all", description="subject attribute the hidden-state probe predicts; all: every "
                                 "attribute the retain subjects have")
    max_new_tokens: int = Field(12, ge=1, description="greedy tokens generated per attacked question")
    seed: int = Field(0, description="seed of the attacks' random choices (relearning split, shots)")
    passages: bool = Field(False, description="also test membership by Min-K% / Min-K%++ on passages (biographies, "
                           "raw texts); off for the built-in people, who have one biography each: too few for "
                           "an equivalence bound at 30 subjects. Requests with passages turn it on")


class VerdictConfig(BaseModel):
    """How the verdict decides removed / suppressed / not forgotten / inconclusive (`--set verdict.margin=0.1`)."""
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(False, description="run the attacks and the verdict (`obliviate run --verdict`)")
    alpha: float = Field(0.05, gt=0, lt=1, description="error level: of each equivalence bound (removed needs all of "
                         "them), and family-wise, split over the tests (Bonferroni), of 'some test is above'")
    margin: float = Field(0.05, gt=0, le=1, description="equivalence margin in recovery (share of forget items): "
                          "removed needs every test's upper bound of candidate - reference below it")
    auc_margin: float = Field(0.1, gt=0, le=0.5, description="equivalence margin of a membership-inference AUC "
                              "around the reference's (gold's, or chance 0.5 without gold), both sides")
    power: float = Field(0.8, gt=0.5, lt=1, description="power at which an inconclusive verdict states the forget "
                         "subjects needed (if the true difference were 0)")
    bootstrap: int = Field(2000, ge=100, description="bootstrap resamples of subjects")
    controls: bool = Field(True, description="also judge the calibration controls: a second gold (another seed), "
                           "the target behind the `guard` inference-time guard, the untouched target")
    seed: int = Field(0, description="seed of the bootstrap")


class LoraSettings(BaseModel):
    """LoRA through peft (Hu et al. 2021, arXiv 2106.09685): train low-rank adapters, not the weights.

    Set for every method with `--set lora.r=8`, or for one with `--set method_args.npo_rt.lora.r=8`.
    """

    model_config = ConfigDict(extra="forbid")
    r: int = Field(8, description="adapter rank (>= 1)")
    alpha: float | None = Field(None, gt=0, description="LoRA alpha; None uses 2*r (the update is scaled by alpha/r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter input")
    merge: bool = Field(True, description="merge the adapter into the weights (a plain model); False keeps the "
                        "adapter next to the unchanged base weights in the saved directory")
    lr_scale: float = Field(6.0, gt=0, description="multiplies the method's lr: adapters start at zero and "
                            "need a larger step (6 on tiny keeps npo_rt, lr 1e-3, and rmu, lr 2e-3, near their full-parameter "
                            "forgetting; 3 left npo_rt at 57 % vs 3 %: benchmarks/lora_vs_full.py)")

    @field_validator("r")
    @classmethod
    def _positive_rank(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {v}; e.g. lora.r=8, "
                             "or lora=null for full-parameter training")
        return v


class RunConfig(BaseModel):
    """Everything `obliviate run` needs: benchmark, target model, training, methods."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("tiny", description="run name; results go to <output_dir>/<name>/")
    seed: int = Field(0, description="seed of model initialisation, training and unlearning")
    output_dir: str = Field("runs", description="directory holding one sub-directory per run")
    data: DataConfig = Field(default_factory=DataConfig, description="the built-in benchmark")
    model: TinyModelConfig = Field(default_factory=TinyModelConfig, description="the tiny target model")
    train: TrainConfig = Field(default_factory=TrainConfig, description="training of the target and gold models")
    pretrained: PretrainedSettings | None = Field(None, description="fine-tune a real pretrained model into target "
                                                  "and gold (e.g. {model: smollm2-135m-instruct}); None: tiny models")
    methods: list[str] = Field(["gradient_ascent", "gradient_difference"],
                               description="unlearning methods to run, by registered name")
    method_args: dict[str, dict] = Field(default_factory=dict,
                                         description="per-method settings, e.g. {gradient_difference: {lr: 1e-4}}")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; None uses all cores")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation coverage and settings")
    attacks: AttackConfig = Field(default_factory=AttackConfig, description="settings of the attacks (`--verdict`)")
    verdict: VerdictConfig = Field(default_factory=VerdictConfig, description="removed-vs-suppressed verdict")
    lora: LoraSettings | None = Field(None, description="LoRA for every method that supports it (None: full-"
                                      "parameter); method_args.<method>.lora overrides it, null turns it off there")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError(f"name must be a plain directory name (letters, digits, . _ -), got {v!r}; e.g. tiny")
        return v

    @field_validator("methods", mode="before")
    @classmethod
    def _split_methods(cls, v: Any) -> Any:
        # `--set methods=npo,kl` arrives as one string
        if isinstance(v, str):
            return [m.strip() for m in v.split(",") if m.strip()]
        return v

    @model_validator(mode="after")
    def _check_methods(self) -> "RunConfig":
        self.method_args = validate_methods(self.methods, self.method_args)
        return self

    def method_config(self, name: str) -> BaseModel:
        """The typed config of method `name`: its defaults overridden by `method_args[name]`."""
        cls = _method_registry().get(name).config_class
        args = self.method_args.get(name, {})
        # The run-level LoRA applies to methods that train through the shared loop, unless set per method.
        supports = getattr(_method_registry().get(name), "supports_lora", False)
        if self.lora is not None and supports and "lora" in cls.model_fields and "lora" not in args:
            args = {**args, "lora": self.lora.model_dump()}
        return cls(**args)


def validate_methods(methods: list[str], method_args: dict[str, dict]) -> dict[str, dict]:
    """Check method names and their args; return the args as validated (coerced) values.

    Raises ObliviateError for an unknown or repeated method name, an unknown setting
    (with a did-you-mean among the method config's fields) or an invalid value.
    """
    registry = _method_registry()
    seen = set()
    for name in methods:
        registry.get(name)
        if name in seen:
            raise ObliviateError(f"method '{name}' is listed twice in methods; list each method once")
        seen.add(name)
    checked = {}
    for name, args in method_args.items():
        config_class = registry.get(name).config_class
        check_keys(args, config_class, f"method_args.{name}.")
        try:
            checked[name] = config_class(**args).model_dump(mode="json", exclude_unset=True)
        except ValidationError as err:
            raise ObliviateError(validation_message(err, f"method_args.{name}.")) from None
    return checked


def check_keys(raw: dict, model: type[BaseModel], prefix: str = "") -> None:
    """Raise ObliviateError for the first key of `raw` that `model` (or a nested model) lacks."""
    fields = model.model_fields
    for key, value in raw.items():
        if key not in fields:
            key = str(key)
            guess = did_you_mean(key, list(fields))
            where = f" under '{prefix[:-1]}'" if prefix else ""
            hint = f"did you mean '{prefix}{guess}'?" if guess else f"known keys{where}: {', '.join(fields)}"
            raise ObliviateError(f"unknown config key '{prefix}{key}'; {hint}")
        sub = fields[key].annotation
        if get_origin(sub) in (Union, UnionType):  # `Settings | None`: check the keys of Settings
            sub = next((a for a in get_args(sub) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            check_keys(value, sub, f"{prefix}{key}.")


def validation_message(err: ValidationError, prefix: str = "") -> str:
    """A pydantic ValidationError as one line: `invalid config: a.b: problem (got x); ...`."""
    parts = []
    for e in err.errors():
        loc = prefix + ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")  # our validators already quote the value
        elif "input" in e and not isinstance(e["input"], dict):
            got = repr(e["input"])
            msg += f", got {got if len(got) <= 60 else got[:57] + '...'}"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "invalid config: " + "; ".join(parts)


def list_presets() -> list[str]:
    """Names of the presets shipped in obliviate/configs/."""
    folder = resources.files("obliviate") / "configs"
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """An existing file as given, else the packaged preset `obliviate/configs/<name>.yaml`."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = str(name_or_path)
    name = text.removesuffix(".yaml").removesuffix(".yml")
    if path.parent.name == "configs":  # `configs/smollm2.yaml`, as the presets are written in docs
        name = path.name.removesuffix(".yaml").removesuffix(".yml")
    if name and "/" not in name and "\\" not in name:
        preset = resources.files("obliviate") / "configs" / f"{name}.yaml"
        if preset.is_file():
            return Path(str(preset))
    presets = ", ".join(list_presets()) or "none installed"
    raise ObliviateError(f"config file '{text}' not found, and it is not a preset name; "
                         f"pass an existing YAML file or one of the presets: {presets}")


def _read_yaml(path: Path, shown: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise ObliviateError(f"config file '{shown}' is not valid YAML: {problem}{where}") from None
    except OSError as err:
        raise ObliviateError(f"cannot read config file '{shown}': {err.strerror or err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ObliviateError(f"config file '{shown}' must be a mapping of keys to values "
                             f"(e.g. 'train: {{lr: 0.001}}'), got a {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.lr=1e-3` -> (["train", "lr"], "1e-3" parsed as YAML)."""
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise ObliviateError(f"malformed --set '{text}': expected key=value, e.g. train.lr=0.001")
    try:
        parsed = yaml.safe_load(value) if value.strip() else value
    except yaml.YAMLError:
        raise ObliviateError(f"malformed --set '{text}': the value is not valid YAML; "
                             "quote it or write a list as [a, b]") from None
    return [p.strip() for p in parts], parsed


def _set_dotted(raw: dict, parts: list[str], value: Any, text: str) -> None:
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ObliviateError(f"cannot apply --set '{text}': '{'.'.join(parts[: i + 1])}' is a value, "
                                 "not a section")
        node = child
    node[parts[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Defaults < YAML file (a path or a preset name) < overrides ("key.sub=value")."""
    raw: dict = {}
    if path is not None:
        raw = _read_yaml(resolve_config_path(path), str(path))
    for text in overrides:
        parts, value = parse_override(text)
        _set_dotted(raw, parts, value, text)
    if "task" in raw:  # a supervised (regression / classification) run: regression.yaml, digits.yaml
        from obliviate.supervised.config import build_supervised_config

        return build_supervised_config(raw)
    check_keys(raw, RunConfig)
    try:
        return RunConfig(**raw)
    except ValidationError as err:
        raise ObliviateError(validation_message(err)) from None


def config_to_dict(cfg: BaseModel) -> dict:
    """A JSON-ready dict of the config (for report.json); `RunConfig(**d)` rebuilds it."""
    return cfg.model_dump(mode="json")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"config_hash cannot hash a {type(obj).__name__}")


def config_hash(obj: Any) -> str:
    """First 12 hex chars of sha256 over canonical JSON (sorted keys); for cache keys."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
