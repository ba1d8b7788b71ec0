"""Wall time and peak memory of the default `obliviate run`, from a cold and from a warm cache.

    python benchmarks/main_job.py [--config tiny] [--out benchmarks/results/main_job.json]

Cold: a fresh output directory (benchmark, tokenizer, target and gold trained from scratch).
Warm: the same command again (target and gold reused from the cache). Cold quick: `run --quick`
(no MUSE curves) in another fresh directory. Memory is sampled every
0.1 s over the whole process tree (training runs in worker processes), and the largest single
process is taken from the kernel's own accounting (getrusage of the children).
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


def measure(cmd: list[str]) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - start
    output = proc.stdout.read()
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output}")
    return {"wall_s": round(wall, 1), "peak_rss_tree_gib": round(peak / GIB, 3), "output": output}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--out", default="benchmarks/results/main_job.json")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # > ~0.5 means other jobs shared the cores: timings are inflated
    workdir, quickdir = (Path(tempfile.mkdtemp(prefix="obliviate-bench-")) for _ in range(2))
    cmd = [sys.executable, "-m", "obliviate.cli", "run", "--config", args.config, "--set", f"output_dir={workdir}"]
    try:
        cold = measure(cmd)
        warm = measure(cmd)
        quick = measure([*cmd[:-1], f"output_dir={quickdir}", "--quick"])
        report = json.loads(next(workdir.glob("*/report.json")).read_text())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(quickdir, ignore_errors=True)
    max_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
    result = {
        "config": args.config,
        "cpus": os.cpu_count(),
        "cold": {k: v for k, v in cold.items() if k != "output"},
        "warm": {k: v for k, v in warm.items() if k != "output"},
        "cold_quick": {k: v for k, v in quick.items() if k != "output"},
        "load_average_before": round(load_before, 2),
        "max_single_process_rss_gib": round(max_child / GIB, 3),
        "warm_stage_timings_s": report["timings_s"],
        "models": report["models"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(warm["output"])
    print(json.dumps({k: result[k] for k in ("config", "cpus", "cold", "warm", "cold_quick",
                                                 "max_single_process_rss_gib", "load_average_before")},
                     indent=1))


if __name__ == "__main__":
    main()
