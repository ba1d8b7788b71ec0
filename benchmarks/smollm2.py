"""End-to-end `obliviate run --config configs/smollm2.yaml`: wall time, peak RSS and the method table.

    python benchmarks/smollm2.py [--set key=value ...] [--out benchmarks/results/smollm2.json]

Runs cold, in a fresh output directory: SmolLM2-135M-Instruct is fine-tuned into target and gold,
each method unlearns, every model is evaluated. Memory is sampled every 0.2 s over the process
tree and the largest process is also taken from the kernel (getrusage of the children). The load
average before and after is recorded: other jobs on the cores inflate the wall time. The script
also checks the acceptance targets of the preset and prints which ones hold.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

GIB = 1024**3
COLUMNS = ("forget_acc", "retain_acc", "world_mc_acc", "world_rouge", "forget_truth_ratio", "forget_quality",
           "model_utility")


def measure(cmd: list[str]) -> dict:
    start, loads = time.perf_counter(), []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root, peak, last = psutil.Process(proc.pid), 0, 0.0
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [root, *root.children(recursive=True)] if p.is_running()))
        except psutil.Error:
            pass
        if time.perf_counter() - last > 30:
            loads.append(os.getloadavg()[0])
            last = time.perf_counter()
        time.sleep(0.2)
    output = proc.stdout.read()
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-5000:]}")
    return {"wall_s": round(time.perf_counter() - start, 1), "peak_rss_tree_gib": round(peak / GIB, 3),
            "load_average_mean_during": round(sum(loads) / max(1, len(loads)), 2), "output": output}


def acceptance(models: dict, methods: list[str]) -> dict:
    """The preset's targets (issue 8). World knowledge is judged by multiple choice (world_mc_acc);
    the answers by generation (world_rouge) are checked alongside, on the same bounds. "Within n
    points" bounds the loss against the untouched model: collateral damage, not a gain."""
    pre, target, gold = models["pretrained"], models["target"], models["gold"]
    near = lambda m, key, pts: round(pre[key] - models[m][key], 6) <= pts  # noqa: E731  (100 questions: 0.05 is 5)
    checks = {
        "target_forget_acc>=0.80": target["forget_acc"] >= 0.80,
        "gold_forget_acc<=0.15": gold["forget_acc"] <= 0.15,
        **{f"{m}_{key}_within_5pt": near(m, key, 0.05) for m in ("target", "gold")
           for key in ("world_mc_acc", "world_rouge")},
    }
    for m in methods:
        checks[f"{m}:forget<=gold+10pt_and_world_mc_within_10pt"] = (
            models[m]["forget_acc"] <= gold["forget_acc"] + 0.10 and near(m, "world_mc_acc", 0.10))
        checks[f"{m}:world_rouge_within_10pt"] = near(m, "world_rouge", 0.10)
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/smollm2.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra --set key=value")
    parser.add_argument("--out", default="benchmarks/results/smollm2.json")
    parser.add_argument("--workdir", help="keep the run here (reused caches make the run warm, and it says so)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="obliviate-smollm2-"))
    cold = not (workdir.is_dir() and any(workdir.iterdir()))
    cmd = [sys.executable, "-m", "obliviate.cli", "run", "--config", args.config, "--set", f"output_dir={workdir}"]
    for o in args.overrides:
        cmd += ["--set", o]
    try:
        run = measure(cmd)
        report = json.loads(next(workdir.glob("*/report.json")).read_text())
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    max_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
    methods = report["config"]["methods"]
    table = {name: {k: row.get(k) for k in COLUMNS} for name, row in report["models"].items()}
    result = {
        "command": " ".join(["obliviate", *cmd[3:]]),
        "cold": cold,
        "cpus": os.cpu_count(),
        "threads": report["config"].get("threads"),
        "wall_s": run["wall_s"],
        "wall_min": round(run["wall_s"] / 60, 1),
        "peak_rss_tree_gib": run["peak_rss_tree_gib"],
        "max_single_process_rss_gib": round(max_child / GIB, 3),
        "load_average_before_1_5_15min": [round(x, 2) for x in load_before],
        "load_average_mean_during": run["load_average_mean_during"],
        "stage_timings_s": report["timings_s"],
        "benchmark": report["benchmark"],
        "unlearning": {m: {k: v for k, v in report["unlearning"][m].items() if k in ("steps", "stopped", "seconds")}
                       for m in methods},
        "table": table,
        "acceptance": acceptance(report["models"], methods),
        "forget_samples": {m: report["forget_samples"][m][:3] for m in report["forget_samples"]},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'model':<12}" + "".join(f"{c:>20}" for c in COLUMNS))
    for name, row in table.items():
        print(f"{name:<12}" + "".join(f"{'n/a' if row[c] is None else f'{row[c]:.3f}':>20}" for c in COLUMNS))
    print(json.dumps({k: result[k] for k in ("cold", "wall_min", "peak_rss_tree_gib", "max_single_process_rss_gib",
                                             "load_average_before_1_5_15min", "load_average_mean_during",
                                             "stage_timings_s", "unlearning", "acceptance")}, indent=1))


if __name__ == "__main__":
    main()
