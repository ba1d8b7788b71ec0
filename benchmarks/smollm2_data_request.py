"""A real model, a data request: the smollm2 preset's target forgets its forget people through `obliviate forget`.

    python benchmarks/smollm2_data_request.py [--methods npo_kl,rmu] [--set output_dir=runs]

The target (SmolLM2-135M-Instruct fine-tuned on the preset's people, from the run cache or trained
as `obliviate train --config smollm2` does) is handed to `obliviate.requests.forget.forget` as a
user's model: the forget people's QA records, with holdout people as the reference. The preset has
2 holdout people (20 records), below the 72 reference records the membership test needs for any
power, so 6 more holdout people are drawn by the same generator (never trained: the target cannot
know them). Each method's output is then also judged the benchmark's way, against gold on the same
forget items, to see whether the gold-free verdict agrees. Writes
benchmarks/results/smollm2_data_request.json (verdicts, every test's bounds, time, peak RSS, load;
each method's row kept until that method is run again).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import torch

from obliviate.config import load_config
from obliviate.data.people import make_people, qa_pairs
from obliviate.models.hf import HFLanguageModel
from obliviate.pipeline import attack_all, judge_against_gold, models_dir, stage_data, stage_models
from obliviate.requests import request_from_benchmark
from obliviate.requests.forget import forget
from obliviate.table import deciding_text

OUT = Path(__file__).parent / "results" / "smollm2_data_request.json"
EXTRA_HOLDOUT = 6


def peak_rss_sampler(stop: threading.Event, peak: list[float]) -> None:
    me = psutil.Process()
    while not stop.is_set():
        rss = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
        peak[0] = max(peak[0], rss / 2**30)
        time.sleep(0.5)


def with_more_holdout(bench, extra: int, seed: int):
    """`bench` with `extra` more never-trained holdout people from the same generator."""
    taken = {r["person"].split()[-1] for s in ("forget", "retain", "holdout") for r in bench.split(s)}
    rng = random.Random(1000 + seed)
    people = make_people(extra, rng, taken=taken)
    return replace(bench, holdout=bench.holdout + [r for p in people for r in qa_pairs(p, rng)], bios=[])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="npo_kl,rmu")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OBLIVIATE_THREADS", "2")))
    cfg = load_config("smollm2", args.overrides)
    load_before, start = os.getloadavg()[0], time.perf_counter()
    bench = stage_data(cfg)
    models = stage_models(cfg, bench)  # cached after `obliviate train --config smollm2`
    work = Path(tempfile.mkdtemp(prefix="smollm2-request-"))
    request = request_from_benchmark(with_more_holdout(bench, EXTRA_HOLDOUT, cfg.seed), work / "request")
    gold = attack_all(models["gold"], bench, cfg)
    results = {}
    for method in [m for m in args.methods.split(",") if m]:
        stop, peak = threading.Event(), [0.0]
        sampler = threading.Thread(target=peak_rss_sampler, args=(stop, peak), daemon=True)
        sampler.start()
        t = time.perf_counter()
        evidence = forget(models_dir(cfg) / "target", request, method, work / method, cfg)
        stop.set()
        seconds = time.perf_counter() - t
        candidate = HFLanguageModel.load(work / method, name=method)
        with_gold = judge_against_gold(attack_all(candidate, bench, cfg), gold, cfg)
        free = evidence["after"]
        results[method] = {"load_average_before": round(load_before, 2), "threads": torch.get_num_threads(),
            "gold_free": free["verdict"], "gold_free_reason": deciding_text(free),
            "gold_based": with_gold["verdict"], "gold_based_reason": deciding_text(with_gold),
            "agree": free["verdict"] == with_gold["verdict"], "before": evidence["before"]["verdict"],
            "forget_seconds": round(seconds, 1), "forget_peak_rss_gib": round(peak[0], 2),
            "tests_gold_free": free["evidence"], "tests_gold_based": with_gold["evidence"],
            "skipped": free["skipped"], "unlearning": evidence["unlearning"]}
        print(f"{method}: gold-free {free['verdict']} ({deciding_text(free)}) | gold {with_gold['verdict']} "
              f"({deciding_text(with_gold)}) [{seconds:.0f} s, {peak[0]:.2f} GiB]", flush=True)
    # Methods run one at a time (`--methods rmu`) accumulate: a rerun replaces only its own rows.
    earlier = json.loads(OUT.read_text())["methods"] if OUT.is_file() else {}
    results = {**{m: r for m, r in earlier.items() if m not in results}, **results}
    report = {"sizes": evidence["sizes"], "forget_people": len(bench.people("forget")),
              "reference_people": len(bench.people("holdout")) + EXTRA_HOLDOUT, "load_average_before": round(load_before, 2),
              "load_average_after": round(os.getloadavg()[0], 2), "seconds": round(time.perf_counter() - start, 1),
              "threads": torch.get_num_threads(), "methods": results}
    OUT.write_text(json.dumps(report, indent=1, default=float) + "\n")
    for method, r in results.items():
        print(f"\n{method}: before {r['before']}, after (gold-free) {r['gold_free']}, gold-based {r['gold_based']}")
        print("| test | model | reference | difference | bounds | margin | state |\n| --- | --- | --- | --- | --- | --- | --- |")
        for name, e in r["tests_gold_free"].items():
            state = "above" if e["above"] else "within margin" if e["equivalent"] else "undecided"
            print(f"| {name} | {e['candidate']:.2f} | {e['reference']:.2f} | {e['difference']:+.2f} | "
                  f"[{e['lower']:+.2f}, {e['upper']:+.2f}] | {e['margin']:.2f} | {state} |")


if __name__ == "__main__":
    main()
