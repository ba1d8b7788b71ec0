"""What every guard shares: its config, the guarded `LanguageModel` wrapper, and the method that
builds one (target store + calibrated prompt classifier) from a target model and a benchmark.

A guard never changes weights: `unlearn` wraps the target it is given (no copy) and returns a
`GuardedModel` whose `generate` / `log_probs` route prompts the classifier flags through the guard
and everything else to the unchanged target. Its result is *suppression*, not removal.

    method = METHODS.get("guard")(GuardMethodConfig())   # or "eco", "alu"
    guarded = method.unlearn(target, bench, seed=0)       # a LanguageModel; method.facts() = FPR, recall, ...
    guarded.save("runs/x/guard");  load_guarded("runs/x/guard")
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from obliviate.data import Benchmark, format_prompt
from obliviate.errors import ObliviateError
from obliviate.guards.classifier import Decision, PromptClassifier
from obliviate.guards.embeddings import load_embedder
from obliviate.guards.targets import ForgetTarget, TargetStore, read_targets_jsonl, targets_from_benchmark
from obliviate.io import atomic_write_text
from obliviate.models.hf import HFLanguageModel
from obliviate.models.protocol import HiddenStatesUnavailable

NO_HIDDEN_STATES = "n/a: guard wrappers do not change weights"
GUARDED_KINDS: dict[str, type["GuardedModel"]] = {}  # kind -> class, for `load_guarded`


class GuardHiddenStatesUnavailable(HiddenStatesUnavailable):
    """Raised by `GuardedModel.hidden_states`: a guard's activations are the target's own."""


class GuardConfig(BaseModel):
    """Settings every guard shares: where its targets come from and how its classifier fires."""
    model_config = ConfigDict(extra="forbid")
    targets_file: str | None = Field(None, description="JSONL of forget targets; unset = one per forget-split person")
    embedding_model: str | None = Field(None, description="local sentence-transformers directory; unset = the "
                                        "packaged all-MiniLM-L6-v2")
    surname_alias: bool = Field(True, description="benchmark targets also match their surname alone")
    top_k: int = Field(3, ge=1, le=50, description="targets retrieved per prompt (alias hits first)")
    fpr: float = Field(0.01, ge=0, lt=1, description="classifier false-positive rate calibrated on retain + world")


def _prompts(records: list[dict]) -> list[str]:
    """Every question form of the records (trained phrasings and the held-out paraphrase), formatted."""
    return [format_prompt(q) for r in records for q in dict.fromkeys([*r["phrasings"], r["paraphrased_question"]])]


def calibrate_on_benchmark(clf: PromptClassifier, bench: Benchmark, fpr: float, seed: int) -> dict:
    """Calibrate on a seeded half of the retain + world records; measure on the other half and more.

    Returns the classifier facts the report shows: threshold, false-positive rates (calibration half,
    held-out half, all retain + world), recall on forget prompts (all question forms, and the
    never-trained paraphrases alone) and the fire rates on neighbours and never-trained people.
    """
    negatives = [*bench.retain, *bench.world]
    order = random.Random(seed).sample(range(len(negatives)), len(negatives))
    half = len(order) // 2
    calib, held = [negatives[i] for i in order[:half]], [negatives[i] for i in order[half:]]
    threshold = clf.calibrate(_prompts(calib), fpr)
    paraphrased = [format_prompt(r["paraphrased_question"]) for r in bench.forget]
    rate = lambda prompts: None if not prompts else round(clf.fire_rate(prompts), 4)  # noqa: E731
    return {"targets": len(clf.store), "threshold": round(threshold, 4), "fpr_target": fpr,
            "fpr_calibration": rate(_prompts(calib)), "fpr_heldout": rate(_prompts(held)),
            "fpr_retain_world": rate(_prompts(negatives)), "recall_forget": rate(_prompts(bench.forget)),
            "recall_forget_paraphrased": rate(paraphrased), "fire_rate_neighbours": rate(_prompts(bench.neighbours)),
            "fire_rate_holdout": rate(_prompts(bench.holdout))}


class GuardedModel:
    """A `LanguageModel` that guards the prompts its classifier flags and passes the rest through.

    Subclasses set `kind` and `config_class` and implement `_guarded_generate` and
    `_guarded_log_probs` for flagged prompts; `state` holds what the guard fitted (e.g. ECO's sigma).
    """
    kind = "guarded"
    config_class: type[GuardConfig] = GuardConfig
    changes_weights = False  # hidden-state metrics: report NO_HIDDEN_STATES, never the target's numbers

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        GUARDED_KINDS[cls.kind] = cls

    def __init__(self, base: HFLanguageModel, classifier: PromptClassifier, config: GuardConfig,
                 name: str | None = None, state: dict | None = None):
        self.base, self.classifier, self.config = base, classifier, config
        self.name, self.state = name or self.kind, dict(state or {})

    @property
    def tokenizer(self):
        return self.base.tokenizer

    def _route(self, prompts: list[str]) -> tuple[list[Decision], list[int], list[int]]:
        decisions = self.classifier.classify(prompts)
        flagged = [i for i, d in enumerate(decisions) if d.fired]
        return decisions, flagged, [i for i, d in enumerate(decisions) if not d.fired]

    def log_probs(self, prompts: list[str], answers: list[str]) -> list[torch.Tensor]:
        if len(prompts) != len(answers):
            raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
        decisions, flagged, plain = self._route(prompts)
        out: list[torch.Tensor] = [torch.empty(0)] * len(prompts)
        if plain:
            for i, lp in zip(plain, self.base.log_probs([prompts[i] for i in plain], [answers[i] for i in plain])):
                out[i] = lp
        if flagged:
            guarded = self._guarded_log_probs([prompts[i] for i in flagged], [answers[i] for i in flagged],
                                              [decisions[i] for i in flagged])
            for i, lp in zip(flagged, guarded):
                out[i] = lp
        return out

    def generate(self, prompts: list[str], max_new_tokens: int = 24) -> list[str]:
        decisions, flagged, plain = self._route(prompts)
        out = [""] * len(prompts)
        if plain:
            for i, g in zip(plain, self.base.generate([prompts[i] for i in plain], max_new_tokens)):
                out[i] = g
        if flagged:
            guarded = self._guarded_generate([prompts[i] for i in flagged], [decisions[i] for i in flagged],
                                             max_new_tokens)
            for i, g in zip(flagged, guarded):
                out[i] = g
        return out

    def _guarded_log_probs(self, prompts: list[str], answers: list[str], decisions: list[Decision]
                           ) -> list[torch.Tensor]:
        raise NotImplementedError

    def _guarded_generate(self, prompts: list[str], decisions: list[Decision], max_new_tokens: int) -> list[str]:
        raise NotImplementedError

    def hidden_states(self, texts: list[str]) -> list[torch.Tensor]:
        raise GuardHiddenStatesUnavailable(
            f"{NO_HIDDEN_STATES} ({self.name} wraps the target; its activations are the target's, "
            "available unguarded as `.base.hidden_states`)")

    def save(self, path: str | Path) -> None:
        """`model/` (the wrapped HF model), `targets/` (targets + embeddings), `guard.json` (the rest)."""
        path = Path(path)
        self.base.save(path / "model")
        self.classifier.store.save(path / "targets")
        atomic_write_text(path / "guard.json", json.dumps(
            {"kind": self.kind, "name": self.name, "config": self.config.model_dump(mode="json"),
             "threshold": self.classifier.threshold, "state": self.state}, indent=1))


def is_guarded_dir(path: str | Path) -> bool:
    return (Path(path) / "guard.json").is_file()


def load_guarded(path: str | Path, name: str | None = None) -> GuardedModel:
    """A guarded model saved by `GuardedModel.save` (any kind)."""
    path = Path(path)
    if not is_guarded_dir(path):
        raise ObliviateError(f"no guarded model at {path} (guard.json missing); save one with `.save(path)`")
    meta = json.loads((path / "guard.json").read_text())
    if meta.get("kind") not in GUARDED_KINDS:
        raise ObliviateError(f"{path}/guard.json has unknown guard kind {meta.get('kind')!r}; "
                             f"known: {', '.join(sorted(GUARDED_KINDS))}")
    cls = GUARDED_KINDS[meta["kind"]]
    config = cls.config_class(**meta["config"])
    store = TargetStore.load(path / "targets", load_embedder(config.embedding_model))
    classifier = PromptClassifier(store, meta["threshold"], config.top_k)
    return cls(HFLanguageModel.load(path / "model"), classifier, config, name or meta["name"], meta["state"])


class GuardMethod:
    """Registered under the guard's name with the `Unlearner` surface: `unlearn(target, bench, seed)`
    returns a `GuardedModel` around the target (unchanged), `facts()` what the report records."""
    config_class: type[GuardConfig] = GuardConfig
    model_class: type[GuardedModel] = GuardedModel
    name = "guarded"

    def __init__(self, config: GuardConfig | None = None):
        self.config = config or self.config_class()
        self._facts: dict = {}

    def store(self, bench: Benchmark, previous: list[ForgetTarget] = ()) -> TargetStore:
        """The targets to guard: `previous` ones (earlier requests) plus the file's or the forget split's."""
        embedder = load_embedder(self.config.embedding_model)
        if self.config.targets_file:
            new = read_targets_jsonl(self.config.targets_file)
            if not new:
                raise ObliviateError(f"target file {self.config.targets_file} holds no targets; add one JSON "
                                     "object per line")
        else:
            new = targets_from_benchmark(bench, self.config.surname_alias)
        known = {t.name for t in previous}
        return TargetStore([*previous, *(t for t in new if t.name not in known)], embedder)

    def unlearn(self, target: HFLanguageModel | GuardedModel, bench: Benchmark, seed: int = 0) -> GuardedModel:
        """Guard `target`. Given a model a guard already wraps (sequential forget requests, MUSE
        sustainability), the new guard wraps the same unguarded model and keeps the earlier targets."""
        previous = target.classifier.store.targets if isinstance(target, GuardedModel) else []
        base = target.base if isinstance(target, GuardedModel) else target
        classifier = PromptClassifier(self.store(bench, previous), top_k=self.config.top_k)
        self._facts = {"classifier": calibrate_on_benchmark(classifier, bench, self.config.fpr, seed)}
        model = self.model_class(base, classifier, self.config, name=self.name)
        self._facts.update(self.fit(model, bench, seed))
        return model

    def fit(self, model: GuardedModel, bench: Benchmark, seed: int) -> dict:
        """Tune the guard's own state on the benchmark (ECO's sigma); returns facts for the report."""
        return {}

    def facts(self) -> dict:
        return {"changes_weights": False, "result": "suppression: an inference-time guard, weights unchanged",
                **self._facts}
