"""Supervised unlearning (issue 10): every method and baseline on each built-in task, against gold.

    python benchmarks/supervised.py            # about 3-4 minutes on 2 CPU cores
    python benchmarks/supervised.py --skip-timing

Cases: the `regression` preset (synthetic, one whole group forgotten), the same methods on
scikit-learn's diabetes (30 % of the train samples forgotten at random) with a target trained 20
epochs and one trained 40 epochs (it memorises: train RMSE half its test RMSE), the `digits` preset
(class 3 forgotten; the target trains on 10 % of digits for 200 epochs, so it memorises) and digits
with 20 % random samples forgotten. Method settings other than the presets' are in DIABETES and
DIABETES_MEMORISED below; gaussian_ft runs at its defaults everywhere. For every model: the forget /
retain / test error (RMSE, regression) or accuracy (classification), the loss-attack MIA AUC and its
gold-calibrated variant, the activation distance to gold, and the issue's bar (forget within 10 %
of gold, retain and test at most 10 % worse than the target). The plain MIA AUC of target and
gold is also measured over seeds 0-19, to show how far from 0.5 chance alone puts gold's (forget
sets of 18-360 samples) and whether the target's stays above it. Unless --skip-timing,
each preset is timed as `/usr/bin/time -v obliviate run --config <preset>` (wall time, peak RSS).

Writes benchmarks/results/supervised.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from obliviate.runtime import environment
from obliviate.supervised.config import load_supervised_config
from obliviate.supervised.metrics import evaluate
from obliviate.supervised.pipeline import run_supervised, train_reference
from obliviate.supervised.report import main_metric
from obliviate.supervised.tasks import build_task

OUT = Path(__file__).resolve().parent / "results" / "supervised.json"
DIABETES = ["task=diabetes", "name=diabetes", "forget.kind=random", "forget.fraction=0.3", "train.epochs=20",
            "method_args.blindspot={epochs: 5, forget_weight: 1.0, blindspot_epochs: 3}"]
# gaussian_ft runs at its defaults on every case (the paper's mixing, 5 epochs, lr 1e-3); it used to be
# given {epochs: 20, forget_weight: 0.3, lr: 0.001} here and {epochs: 40, forget_weight: 0.5, lr: 0.0003}
# below, settings picked on diabetes that still lost 21 % (20-epoch target) test RMSE.
DIABETES_MEMORISED = ["task=diabetes", "name=diabetes-40", "forget.kind=random", "forget.fraction=0.3",
                      # trained 40 epochs, the target memorises its 265 train samples: a longer budget
                      "method_args.retain_ft={epochs: 60}",
                      "method_args.random_labels={epochs: 60, forget_weight: 0.5, lr: 0.0003}",
                      "method_args.blindspot={epochs: 60, forget_weight: 2.0, blindspot_epochs: 3, lr: 0.001}"]
CASES = {  # name: (preset, overrides)
    "synthetic, group forgotten": ("regression", []),
    "diabetes, 30 % random, target trained 20 epochs": ("regression", DIABETES),
    "diabetes, 30 % random, target trained 40 epochs (memorises)": ("regression", DIABETES_MEMORISED),
    "digits, class 3 forgotten": ("digits", []),
    "digits, 20 % random": ("digits", ["name=digits-random", "forget.kind=random", "forget.fraction=0.2"]),
}
SEEDS = range(20)


def mia_over_seeds(preset: str, overrides: list[str]) -> dict[str, list[float]]:
    """The plain loss-attack AUC of target and gold on seeds 0-19 (each seed: its own split and models)."""
    aucs = {"target": [], "gold": []}
    for seed in SEEDS:
        cfg = load_supervised_config(preset, [*overrides, f"seed={seed}", "methods=[]"])
        task = build_task(cfg)
        models = {role: train_reference(cfg, task, role) for role in aucs}
        for role, model in models.items():
            aucs[role].append(round(evaluate(model, task, models["gold"])["mia_auc"].value, 4))
    return aucs


def time_preset(preset: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(["/usr/bin/time", "-v", "obliviate", "run", "--config", preset, "--set",
                               f"output_dir={tmp}"], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"obliviate run --config {preset} failed:\n{proc.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    h, m, s = (float(g) if g else 0.0 for g in wall.groups())
    return {"wall_s": round(3600 * h + 60 * m + s, 1), "peak_rss_mib": round(int(rss.group(1)) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-timing", action="store_true", help="do not time the presets through the CLI")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = {}
    for case, (preset, overrides) in CASES.items():
        t = time.perf_counter()
        report = run_supervised(load_supervised_config(preset, overrides), write=False)
        m = main_metric(report["task"]["kind"])
        rows = {name: {k: round(row[k], 4) for k in (f"forget_{m}", f"retain_{m}", f"test_{m}", "mia_auc",
                                                     "mia_ref_auc", "act_dist")}
                | {"bar": report["acceptance"][name] if name not in ("target", "gold") else None,
                   "seconds": report["unlearning"].get(name, {}).get("seconds")}
                for name, row in report["models"].items()}
        cases[case] = {"preset": preset, "overrides": overrides, "metric": m, "sizes": report["benchmark"],
                       "models": rows,
                       **{f"{role}_mia_auc_seeds": a for role, a in mia_over_seeds(preset, overrides).items()},
                       "seconds": round(time.perf_counter() - t, 1)}
        print(f"{case}: {cases[case]['seconds']} s", file=sys.stderr)
    timing = {} if args.skip_timing else {p: time_preset(p) for p in ("regression", "digits")}
    result = {"benchmark": "supervised", "cases": cases, "preset_timing": timing, "environment": environment()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = []
    for case, c in result["cases"].items():
        unit = "RMSE" if c["metric"] == "rmse" else "acc"
        seeds, target = c["gold_mia_auc_seeds"], c["target_mia_auc_seeds"]
        near = sum(abs(a - 0.5) <= 0.05 for a in seeds)
        above = sum(t > g for t, g in zip(target, seeds))
        lines += [f"\n**{case}** ({', '.join(f'{k} {v}' for k, v in c['sizes'].items())}; MIA AUC over "
                  f"{len(seeds)} seeds: gold mean {statistics.mean(seeds):.3f}, sd {statistics.stdev(seeds):.3f}, "
                  f"range {min(seeds):.3f}-{max(seeds):.3f}, {near}/{len(seeds)} within 0.5 ± 0.05; target mean "
                  f"{statistics.mean(target):.3f}, sd {statistics.stdev(target):.3f}, above gold's on "
                  f"{above}/{len(seeds)} seeds)\n",
                  f"| model | forget {unit} | retain {unit} | test {unit} | MIA AUC | MIA AUC (gold-calibrated) "
                  "| act. dist. to gold | bar |", "|---|---|---|---|---|---|---|---|"]
        for name, r in c["models"].items():
            bar = "" if r["bar"] is None else ("pass" if r["bar"]["pass"] else "fail: " + ", ".join(
                k.split("_")[0] for k, ok in r["bar"].items() if k != "pass" and not ok))
            m = c["metric"]
            lines.append(f"| {name} | {r[f'forget_{m}']:.3f} | {r[f'retain_{m}']:.3f} | {r[f'test_{m}']:.3f} | "
                         f"{r['mia_auc']:.3f} | {r['mia_ref_auc']:.3f} | {r['act_dist']:.3f} | {bar} |")
    for preset, t in result["preset_timing"].items():
        lines.append(f"\n`obliviate run --config {preset}`: {t['wall_s']} s wall, peak RSS {t['peak_rss_mib']} MiB")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
