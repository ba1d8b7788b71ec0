"""Calibration controls: models whose verdict is known, judged in every `obliviate run --verdict`.

- `gold_seed<k>`: gold retrained on retain with another seed: never saw the forget set, so it
  must come out `removed` (the reference gold itself is never a candidate);
- `guarded_target`: the untouched target behind the `guard` inference-time guard: its weights
  hold everything, so it must come out `suppressed`;
- the untouched `target` (already a row of every run): must come out `not forgotten`.
"""

from __future__ import annotations

EXPECTED = {"target": "not forgotten"}


def build_controls(cfg, bench, target) -> dict:
    """{name: (LanguageModel, expected verdict)} for the two controls a run does not already have."""
    from obliviate.methods import METHODS
    from obliviate.pipeline import stage_models

    seed = cfg.seed + 1
    gold2 = stage_models(cfg.model_copy(update={"seed": seed}), bench, ("gold",))["gold"]
    gold2.name = f"gold_seed{seed}"
    guard = METHODS.get("guard")(cfg.method_config("guard")).unlearn(target, bench, seed=cfg.seed)
    guard.name = "guarded_target"
    return {gold2.name: (gold2, "removed"), guard.name: (guard, "suppressed")}
