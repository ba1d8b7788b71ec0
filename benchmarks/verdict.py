"""Removed, suppressed or not forgotten: the verdict for every weight-space method and the three
calibration controls on the tiny preset, controls repeated over three seeds.

    python benchmarks/verdict.py [--config tiny] [--seeds 0,1,2] [--methods npo_rt,rmu]

Per seed: the run's target and gold (trained or taken from the cache), the controls (gold retrained
with seed + 1 must be `removed`; the target behind the `guard` inference-time guard `suppressed`;
the untouched target `not forgotten`); for the first seed also every weight-space method, unlearned
as `obliviate run` does (early stop at gold's level). Every model is attacked and compared with
gold under the same attacks (`obliviate.attacks`). Writes benchmarks/results/verdict.json and
prints a markdown table per seed: verdict, deciding test with recovery vs gold and its bound.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from readme_block import write_block

from obliviate.attacks import judge, run_attacks
from obliviate.attacks.controls import EXPECTED, build_controls
from obliviate.config import load_config
from obliviate.methods import METHODS
from obliviate.pipeline import stage_data, stage_models, stage_unlearn
from obliviate.table import deciding_text


def weight_space() -> list[str]:
    return [n for n in METHODS.names() if METHODS.get(n).__module__.startswith("obliviate.methods.weight_space.")]


def run_seed(config: str, seed: int, methods: list[str]) -> dict:
    cfg = load_config(config, [f"seed={seed}", "threads=1", f"methods={methods or ['gradient_ascent']}"])
    bench = stage_data(cfg)
    models = stage_models(cfg, bench)
    candidates = {"target": (models["target"], EXPECTED["target"]), **build_controls(cfg, bench, models["target"])}
    for name in methods:
        candidates[name] = (stage_unlearn(cfg, name, models["target"], bench, models["gold"])[0], None)
    start = time.perf_counter()
    gold = run_attacks(models["gold"], bench, cfg.attacks)
    out = {}
    for name, (lm, expected) in candidates.items():
        v = judge(run_attacks(lm, bench, cfg.attacks), gold, cfg.verdict, getattr(lm, "changes_weights", True))
        if expected is not None:
            v |= {"control": True, "expected": expected, "as_expected": v["verdict"] == expected}
        out[name] = v
        print(f"seed {seed} {name}: {v['verdict']} — {deciding_text(v)}", flush=True)
    return {"seed": seed, "attack_seconds": round(time.perf_counter() - start, 1), "verdicts": out}


def table(result: dict) -> str:
    names = [n for n in result["verdicts"]]
    tests = list(next(iter(result["verdicts"].values()))["evidence"])
    lines = [f"Seed {result['seed']} — recovery candidate / gold per test (✱ = above gold):", "",
             "| model | verdict | deciding evidence | " + " | ".join(tests) + " |", "| --- " * (3 + len(tests)) + "|"]
    for n in names:
        v = result["verdicts"][n]
        ev = v["evidence"]
        cells = [f"{ev[t]['candidate']:.2f} / {ev[t]['gold']:.2f}{' ✱' if ev[t]['above_gold'] else ''}"
                 if t in ev else "skipped" for t in tests]
        label = n + (f" (control, expected {v['expected']}{'' if v['as_expected'] else ' — WRONG'})"
                     if v.get("control") else "")
        lines.append(f"| {label} | {v['verdict']} | {deciding_text(v)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=None, help="comma-separated; default: every weight-space method")
    parser.add_argument("--out", default="benchmarks/results/verdict.json")
    parser.add_argument("--readme", action="store_true", help="rewrite the verdict table in README.md")
    parser.add_argument("--from-json", action="store_true", help="only print (and --readme) the saved results")
    args = parser.parse_args()
    if args.from_json:
        out = json.loads(Path(args.out).read_text())
        report(out, args.readme)
        return
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    methods = args.methods.split(",") if args.methods else weight_space()
    seeds = [int(s) for s in args.seeds.split(",")]
    results = [run_seed(args.config, s, methods if i == 0 else []) for i, s in enumerate(seeds)]
    controls_ok = all(v["as_expected"] for r in results for v in r["verdicts"].values() if v.get("control"))
    out = {"config": args.config, "seeds": seeds, "methods": methods, "controls_as_expected": controls_ok,
           "load_average_before": round(load, 2), "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=float) + "\n")
    report(out, args.readme)


def report(out: dict, readme: bool) -> None:
    text = "\n\n".join(table(r) for r in out["results"])
    text += f"\n\nControls as expected in every seed: {'yes' if out['controls_as_expected'] else 'NO'}."
    print(text)
    if readme:
        write_block("verdict-table", text)


if __name__ == "__main__":
    main()
