"""LoRA against full-parameter unlearning on the tiny preset: does a LoRA run forget as much?

    python benchmarks/lora_vs_full.py [--config tiny] [--ranks 8,16] [--threads 1]

Each method unlearns the cached tiny target once updating all the weights it updates (full) and
once per LoRA rank through adapters (the default `lora.lr_scale` and alpha = 2r, merged), all for
the method's whole step budget (no early stop, so they are compared at equal steps), with the
methods' default configs. Accuracy is the evaluation suite's greedy exact match
(`evals.qa.qa_metrics`) on the forget, retain and world questions. The issue-5 bar: LoRA forget
accuracy within 10 points of full-parameter forget accuracy.

Writes benchmarks/results/lora_vs_full.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from obliviate.config import load_config
from obliviate.evals.qa import qa_metrics
from obliviate.methods import METHODS
from obliviate.pipeline import stage_data, stage_models
from obliviate.runtime import environment

OUT = Path(__file__).resolve().parent / "results" / "lora_vs_full.json"
RUNS = {  # row name: (method, overrides of its config)
    "npo_rt": ("npo_rt", []),
    "rmu": ("rmu", []),
}


def accuracies(lm, bench) -> dict[str, float]:
    return {f"{s}_acc": round(qa_metrics(lm, bench.split(s), s)[0][f"{s}_acc"].value, 4)
            for s in ("forget", "retain", "world")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--ranks", default="8,16", help="LoRA ranks, comma-separated")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    base = load_config(args.config, [])
    bench = stage_data(base)
    models = stage_models(base, bench)
    ranks = [int(r) for r in args.ranks.split(",")]
    result = {"config": args.config, "ranks": ranks, "threads": args.threads, "environment": environment(),
              "target": accuracies(models["target"], bench), "gold": accuracies(models["gold"], bench),
              "methods": {}}
    for row_name, (name, extra) in RUNS.items():
        row = {"method": name, "overrides": extra,
               "method_config": load_config(args.config, extra).method_config(name).model_dump(mode="json")}
        for mode, sets in (("full", []), *((f"lora_r{r}", [f"lora.r={r}"]) for r in ranks)):
            cfg = load_config(args.config, [*sets, *extra, f"method_args.{name}.eval_every=0"])
            config = cfg.method_config(name)
            method = METHODS.get(name)(config)
            start = time.perf_counter()
            lm = method.unlearn(models["target"], bench, seed=cfg.seed)
            seconds = time.perf_counter() - start
            row[mode] = {**accuracies(lm, bench), "steps": method.facts()["steps"], "seconds": round(seconds, 1),
                         "lr": config.lr * (config.lora.lr_scale if config.lora else 1.0),
                         "lora": config.lora.model_dump() if config.lora else None}
            print(f"{row_name} {mode}: " + " ".join(f"{k}={v}" for k, v in row[mode].items() if k != "lora"),
                  flush=True)
        for r in ranks:
            gap = abs(row[f"lora_r{r}"]["forget_acc"] - row["full"]["forget_acc"])
            row[f"gap_points_r{r}"] = round(100 * gap, 1)
            row[f"within_10_points_r{r}"] = gap <= 0.10
        result["methods"][row_name] = row

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    head = " | ".join(f"LoRA r={r} forget / retain / world | gap r={r}" for r in ranks)
    print(f"\n| run | full forget / retain / world | {head} |")
    print("| --- " * (2 + 2 * len(ranks)) + "|")
    cell = lambda m: f"{m['forget_acc']:.2f} / {m['retain_acc']:.2f} / {m['world_acc']:.2f}"  # noqa: E731
    for row_name, row in result["methods"].items():
        loras = " | ".join(f"{cell(row[f'lora_r{r}'])} | {row[f'gap_points_r{r}']}" for r in ranks)
        print(f"| {row_name} | {cell(row['full'])} | {loras} |")
    print(f"target forget {result['target']['forget_acc']:.2f}, gold forget {result['gold']['forget_acc']:.2f}; "
          f"wrote {OUT}")


if __name__ == "__main__":
    main()
