"""Knowledge tests: multiple-choice accuracy on the forgotten knowledge, plain and under attack, against chance.

A knowledge request ("the model must not know this") has no never-trained twin to compare with, but
its probes have a known chance level (1 / number of choices). Each test gives, per probe, 1 if the
most likely choice is the correct one; the reference is the probe's chance level, so the verdict's
paired bound is on (accuracy - chance). Attacks, each on a copy of the model:
- plain: the probes as asked;
- relearning: fine-tune on the correct answers of `relearn_fraction` of the probes, ask the rest;
- quantization_int8 / quantization_4bit: the probes on a quantized copy (`attacks.weights`);
- role_play and many_shot: the role-play instruction, or neighbour probes answered correctly, before
  the question (`attacks.prompts`).
"""

from __future__ import annotations

import random
import warnings

import torch

from obliviate.attacks.base import AttackSkipped, Recovery, clone
from obliviate.attacks.prompts import ROLE_PLAY
from obliviate.attacks.weights import round_4bit
from obliviate.config import AttackConfig
from obliviate.data import format_answer, format_prompt
from obliviate.evals.multiple_choice import choice_accuracy

KNOWLEDGE_ATTACKS = ("relearning", "quantization_int8", "quantization_4bit", "role_play", "many_shot")


def subject_of(probe: dict) -> str:
    return probe.get("subject") or probe["question"]


def _recovery(lm, probes: list[dict], details: dict | None = None) -> tuple[Recovery, Recovery]:
    """(accuracy, chance) per probe, as two Recoveries on the same items."""
    people = [subject_of(p) for p in probes]
    return (Recovery(choice_accuracy(lm, probes), people, details or {}),
            Recovery([1 / len(p["choices"]) for p in probes], people))


def _prefixed(probes: list[dict], prefix: str) -> list[dict]:
    return [dict(p, question=prefix + p["question"]) for p in probes]


def relearn(lm, probes: list[dict], cfg: AttackConfig) -> tuple[Recovery, Recovery]:
    from obliviate.models.hf import encode_pairs
    from obliviate.models.train import answer_nll, optimize

    order = random.Random(cfg.seed).sample(range(len(probes)), len(probes))
    k = max(1, round(cfg.relearn_fraction * len(probes)))
    learn, ask = [probes[i] for i in order[:k]], [probes[i] for i in order[k:]]
    if not ask:
        raise AttackSkipped(f"needs at least 2 probes to relearn some and ask the others, got {len(probes)}")
    twin = clone(lm, f"{lm.name}+relearned")
    torch.manual_seed(cfg.seed)
    batch = encode_pairs(twin.tokenizer, [format_prompt(p["question"]) for p in learn],
                         [format_answer(p["choices"][p["answer"]]) for p in learn])
    optimize(twin.model, answer_nll, iter([batch] * cfg.relearn_steps), cfg.relearn_steps, cfg.relearn_lr,
             desc=f"relearning attack on {lm.name}")
    before = choice_accuracy(lm, ask)
    acc, chance = _recovery(twin, ask, {"relearned_probes": len(learn), "steps": cfg.relearn_steps})
    acc.details["before_mean"] = round(sum(before) / len(before), 4)
    return acc, chance


def quantized(lm, probes: list[dict], bits: int) -> tuple[Recovery, Recovery]:
    twin = clone(lm, f"{lm.name}+{bits}bit")
    if bits == 8:
        with warnings.catch_warnings():  # torch flags its quantized tensors as deprecated; they still work
            warnings.simplefilter("ignore")
            twin.model = torch.ao.quantization.quantize_dynamic(twin.model, {torch.nn.Linear}, dtype=torch.qint8)
    else:
        with torch.no_grad():
            for module in twin.model.modules():
                if isinstance(module, torch.nn.Linear):
                    module.weight.copy_(round_4bit(module.weight))
    return _recovery(twin, probes)


def knowledge_tests(lm, probes: list[dict], neighbours: list[dict], cfg: AttackConfig
                    ) -> tuple[dict[str, Recovery | str], dict[str, Recovery | str]]:
    """({test: accuracy or why skipped}, {test: chance}) for the plain probes and every attack in `cfg.names`."""
    cand, ref = {}, {}
    cand["plain"], ref["plain"] = _recovery(lm, probes)
    shots = "".join(format_prompt(n["question"]) + format_answer(n["choices"][n["answer"]]) + "\n"
                    for n in random.Random(cfg.seed).sample(neighbours, min(cfg.many_shot, len(neighbours))))

    def many_shot():
        if not shots:
            raise AttackSkipped("needs neighbour probes to use as shots")
        return _recovery(lm, _prefixed(probes, shots))

    runs = {"relearning": lambda: relearn(lm, probes, cfg),
            "quantization_int8": lambda: quantized(lm, probes, 8),
            "quantization_4bit": lambda: quantized(lm, probes, 4),
            "role_play": lambda: _recovery(lm, _prefixed(probes, ROLE_PLAY)),
            "many_shot": many_shot}
    for name in (n for n in cfg.names if n in runs):
        try:
            cand[name], ref[name] = runs[name]()
        except AttackSkipped as why:
            cand[name] = str(why)
    for name in (n for n in cfg.names if n not in runs):
        cand[name] = "a QA attack; a knowledge request is probed by multiple choice"
    return cand, ref
