"""Exact unlearning (SISA, S3T): the cost of deleting 1, 10 and 100 training items vs retraining from
scratch, and service quality before and after deletions, in one run.

    python benchmarks/exact_deletion.py                      # tiny preset; ~30 min on a busy 2-core CPU
    python benchmarks/exact_deletion.py --config micro --out /tmp/exact.json

Full retraining = training the single target model from scratch (world + forget + retain, the run's
train settings), timed in the same run; ratios are deletion / full retraining, in wall time and in
optimizer steps (steps do not depend on CPU contention; the load average is recorded) and in this
process's CPU time (one thread; far less sensitive to other jobs than wall time). Each
deletion of n random items (people's training items, seeded) starts from a copy of the freshly
trained store. S3T deletes instantly by deactivating blocks; the retraining it queues (background
in the paper) is measured separately ("drain"), for the 1-item deletion and the forget split. Quality: greedy exact-match accuracy on world,
retain and forget, and forget quality (KS p-value of forget truth ratios vs the gold model's), for
the single target, each method before deletion, after deleting the forget split, and for S3T after
draining its queue. Writes benchmarks/results/exact_deletion.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

from obliviate.config import load_config
from obliviate.evals.curves import gold_ratio_table, light_eval
from obliviate.evals.tofu import truth_ratios
from obliviate.methods.exact import S3TConfig, S3TStore, SISAStore
from obliviate.methods.exact.store import ExactConfig
from obliviate.models.tiny import build_tiny_model
from obliviate.models.train import train_causal_lm
from obliviate.pipeline import stage_data, stage_models
from obliviate.runtime import environment

SIZES = (1, 10, 100)


def full_retraining(cfg, bench, target) -> dict:
    """Train the single model from scratch, as the target was: the cost exact deletion is measured against."""
    start, cpu = time.perf_counter(), time.process_time()
    model = build_tiny_model(cfg.model, target.tokenizer, cfg.seed)
    examples = bench.training_examples(("world", "forget", "retain"))
    train_causal_lm(model, target.tokenizer, examples, cfg.train, cfg.seed, desc="full retraining")
    return {"seconds": round(time.perf_counter() - start, 2), "cpu_seconds": round(time.process_time() - cpu, 2),
            "steps": -(-len(examples) // cfg.train.batch_size) * cfg.train.epochs}


def measure(store_class, config, cfg, bench, target, gold, full: dict, sizes=SIZES, quality: bool = True,
            out: dict | None = None, save=lambda: None) -> dict:
    """Fills `out` stage by stage, calling `save` after each, so a stopped run keeps what it measured."""
    out = {} if out is None else out
    start, cpu = time.perf_counter(), time.process_time()
    store = store_class.create(None, target.tokenizer, target.model.config, bench, config, cfg.seed)
    out |= {"config": config.model_dump(), "train": {"seconds": round(time.perf_counter() - start, 2),
                                                     "cpu_seconds": round(time.process_time() - cpu, 2),
                                                     "steps": store.steps}}
    save()
    print(f"{store.kind}: trained in {out['train']['seconds']} s, {store.steps} steps", flush=True)
    if quality:
        out["quality_before"] = light_eval(store.language_model(), bench, gold)
        print(f"{store.kind}: before deletion {out['quality_before']}", flush=True)
        save()
    live = sorted(store.record.items)
    out["deletions"] = {}
    for n in sizes:
        copy = store.copy()
        ids = random.Random(n).sample(live, n)
        cpu = time.process_time()
        report = copy.delete(ids)
        cpu = round(time.process_time() - cpu, 2)  # this process's CPU time: little affected by other jobs
        row = {"items": n, "seconds": report["seconds"], "cpu_seconds": cpu, "steps": report["steps"],
               "time_ratio": round(report["seconds"] / full["seconds"], 4),
               "cpu_time_ratio": round(cpu / full["cpu_seconds"], 4),
               "step_ratio": round(report["steps"] / full["steps"], 4),
               "step_ratio_vs_own_training": round(report["steps"] / store.steps, 4),
               "shards_hit": len({copy.record.items[i]["shard"] for i in ids})}
        if isinstance(copy, S3TStore) and n == 1:  # larger drains approach a full retraining: not repeated here
            drain = copy.drain()
            row["drain"] = {**drain, "time_ratio": round(drain["seconds"] / full["seconds"], 4),
                            "step_ratio": round(drain["steps"] / full["steps"], 4)}
        out["deletions"][str(n)] = row
        print(f"{store.kind}: delete {n}: {row}", flush=True)
        save()
    if not quality:
        return out
    forget = store.copy()
    ids = forget.items_of_people(bench.people("forget"))
    report = forget.delete(ids)
    out["forget_split"] = {"items": len(ids), "seconds": report["seconds"], "steps": report["steps"],
                           "quality": light_eval(forget.language_model(), bench, gold)}
    save()
    if isinstance(forget, S3TStore):
        out["forget_split"]["served_blocks"] = {str(s): forget.served(s)[1] for s in range(forget.config.shards)}
        out["forget_split"]["drain"] = forget.drain()
        out["forget_split"]["quality_drained"] = light_eval(forget.language_model(), bench, gold)
    print(f"{store.kind}: forget split deleted: {out['forget_split']}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--out", default="benchmarks/results/exact_deletion.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default="sisa,s3t")
    parser.add_argument("--cost-only", action="store_true", help="deletion costs only: no quality evaluations")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="deletion sizes, e.g. 1,10,100")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="method settings as method.key=value, e.g. sisa.shards=10")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    cfg = load_config(args.config)
    bench = stage_data(cfg)
    models = stage_models(cfg, bench)
    target, gold_lm = models["target"], models["gold"]
    gold = gold_ratio_table(bench, truth_ratios(gold_lm, bench.forget))
    settings = {"sisa": {}, "s3t": {}}
    for o in args.overrides:
        key, value = o.split("=", 1)
        method, field = key.split(".", 1)
        settings[method][field] = json.loads(value) if value[:1] in "0123456789[{tf" else value
    full = full_retraining(cfg, bench, target)
    print(f"full retraining: {full}", flush=True)
    result = {"config": args.config, "threads": args.threads, "load_average_before": load_before,
              "full_retraining": full}
    if not args.cost_only:
        result |= {"target_quality": light_eval(target, bench, gold), "gold_quality": light_eval(gold_lm, bench, gold)}
        print(f"target: {result['target_quality']}", flush=True)
    kinds = {"sisa": (SISAStore, ExactConfig), "s3t": (S3TStore, S3TConfig)}
    for name in args.methods.split(","):
        store_class, config_class = kinds[name]
        result[name] = {}
        measure(store_class, config_class(**settings[name]), cfg, bench, target, gold, full,
                [int(n) for n in args.sizes.split(",")], quality=not args.cost_only, out=result[name],
                save=lambda: write(result, args.out))
        if args.cost_only:
            continue
        tq = result["target_quality"]
        for when in ("quality_before",):
            q = result[name][when]
            result[name][f"{when}_vs_target"] = {k: round(q[f"{k}_acc"] / tq[f"{k}_acc"], 4)
                                                 for k in ("world", "retain")}
        q = result[name]["forget_split"].get("quality_drained", result[name]["forget_split"]["quality"])
        result[name]["after_forget_vs_target"] = {k: round(q[f"{k}_acc"] / tq[f"{k}_acc"], 4)
                                                  for k in ("world", "retain")}
    result["complete"] = True
    write(result, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


def write(result: dict, out: str) -> None:
    """Save what is measured so far (with the load average and environment at this point)."""
    result["load_average_after"] = os.getloadavg()
    result["environment"] = environment()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
