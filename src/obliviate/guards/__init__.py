"""Inference-time unlearning guards: ECO, GUARD and ALU wrap any model without changing weights.

Importing this package registers `eco`, `guard` and `alu` in `obliviate.registry.METHODS`.

    from obliviate.methods import METHODS
    guarded = METHODS.get("guard")().unlearn(target, bench)   # a LanguageModel: evaluate it like any other
    guarded.save(path);  load_guarded(path)
"""

from obliviate.guards import alu, eco, guard  # noqa: F401  (registers the guards)
from obliviate.guards.base import (NO_HIDDEN_STATES, GuardConfig, GuardedModel, GuardHiddenStatesUnavailable,
                                   GuardMethod, is_guarded_dir, load_guarded)
from obliviate.guards.classifier import Decision, PromptClassifier, calibrate_threshold
from obliviate.guards.embeddings import load_embedder
from obliviate.guards.targets import ForgetTarget, TargetStore, read_targets_jsonl

__all__ = ["NO_HIDDEN_STATES", "Decision", "ForgetTarget", "GuardConfig", "GuardHiddenStatesUnavailable",
           "GuardMethod", "GuardedModel", "PromptClassifier", "TargetStore", "calibrate_threshold",
           "is_guarded_dir", "load_embedder", "load_guarded", "read_targets_jsonl"]
