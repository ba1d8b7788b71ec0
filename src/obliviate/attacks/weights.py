"""Attacks on the weights: a few steps of relearning, and quantization. Each works on a copy.

- relearning (Lynch et al. 2024, "Eight methods to evaluate robust unlearning in LLMs"; Hu et al.
  2024, "Jogging the memory of unlearned LLMs"): fine-tune on a part of each forget person's facts
  and ask the *other* facts. Gold gets the same steps on the same facts, so what it recovers is
  what relearning alone teaches; recovery above gold's means the knowledge was latent. The asked
  facts' recall before relearning is kept too (`details["before"]`), so the lift (after - before)
  can be read apart from what the model still said unprompted.
- quantization (Zhang et al. 2024, "Catastrophic failure of LLM unlearning via quantization",
  arXiv 2410.16454): unlearning by small weight changes can round away. int8: torch's dynamic
  quantization of every Linear layer; 4bit: round-to-nearest 4-bit weights, symmetric, one scale
  per group of 32 input weights (the Q4_0 layout), dequantized back to float.
"""

from __future__ import annotations

import random
import warnings
from collections import defaultdict

import torch

from obliviate.attacks.base import AttackConfig, Recovery, clone, register_attack
from obliviate.attacks.prompts import score
from obliviate.data import Benchmark, format_answer, format_prompt
from obliviate.evals.qa import answer_recalled
from obliviate.models.hf import encode_pairs
from obliviate.models.train import answer_nll, optimize


def relearn_split(bench: Benchmark, fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Per forget person, a seeded `fraction` of their records (at least one) to relearn; the rest to ask."""
    by_person = defaultdict(list)
    for r in bench.forget:
        by_person[r["person"]].append(r)
    rng, learn, ask = random.Random(seed), [], []
    for person in sorted(by_person):
        records = by_person[person][:]
        rng.shuffle(records)
        k = max(1, round(fraction * len(records)))
        learn += records[:k]
        ask += records[k:]
    return learn, ask


def recalled(lm, records: list[dict], max_new_tokens: int) -> list[float]:
    """Per record, 1.0 if `lm`'s greedy answer to its question recalls the answer (`answer_recalled`)."""
    answers = lm.generate([format_prompt(r["question"]) for r in records], max_new_tokens)
    return [float(answer_recalled(a, r["answer"])) for a, r in zip(answers, records, strict=True)]


@register_attack("relearning")
def relearning(lm, bench: Benchmark, cfg: AttackConfig) -> Recovery:
    """Recall of the asked records after relearning the others; `details["before"]` holds the same
    records' recall on the untouched `lm` (same order as `scores`), `details["before_mean"]` its mean."""
    learn, ask = relearn_split(bench, cfg.relearn_fraction, cfg.seed)
    before = recalled(lm, ask, cfg.max_new_tokens)  # before the twin exists: `lm` itself is never trained
    twin = clone(lm, f"{lm.name}+relearned")
    torch.manual_seed(cfg.seed)
    batch = encode_pairs(twin.tokenizer, [format_prompt(r["question"]) for r in learn],
                         [format_answer(r["answer"]) for r in learn])
    optimize(twin.model, answer_nll, iter([batch] * cfg.relearn_steps), cfg.relearn_steps, cfg.relearn_lr,
             desc=f"relearning attack on {lm.name}")
    return Recovery(recalled(twin, ask, cfg.max_new_tokens), [r["person"] for r in ask],
                    {"relearned_records": len(learn), "asked_records": len(ask), "steps": cfg.relearn_steps,
                     "before": before, "before_mean": round(sum(before) / len(before), 4) if before else None})


@register_attack("quantization_int8")
def quantization_int8(lm, bench: Benchmark, cfg: AttackConfig) -> Recovery:
    twin = clone(lm, f"{lm.name}+int8")
    with warnings.catch_warnings():  # torch flags its quantized tensors as deprecated; they still work
        warnings.simplefilter("ignore")
        twin.model = torch.ao.quantization.quantize_dynamic(twin.model, {torch.nn.Linear}, dtype=torch.qint8)
        return score(twin, bench, [format_prompt(r["question"]) for r in bench.forget], cfg.max_new_tokens)


def round_4bit(weight: torch.Tensor, group: int = 32) -> torch.Tensor:
    """Symmetric round-to-nearest 4-bit (levels -8..7) with one absmax scale per `group` inputs."""
    out_features, in_features = weight.shape
    pad = (-in_features) % group
    w = torch.nn.functional.pad(weight, (0, pad)).reshape(out_features, -1, group)
    scale = w.abs().amax(-1, keepdim=True).clamp(min=1e-12) / 7
    q = (w / scale).round().clamp(-8, 7) * scale
    return q.reshape(out_features, -1)[:, :in_features].to(weight.dtype)


@register_attack("quantization_4bit")
def quantization_4bit(lm, bench: Benchmark, cfg: AttackConfig) -> Recovery:
    twin = clone(lm, f"{lm.name}+4bit")
    with torch.no_grad():
        for module in twin.model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(round_4bit(module.weight))
    return score(twin, bench, [format_prompt(r["question"]) for r in bench.forget], cfg.max_new_tokens)
