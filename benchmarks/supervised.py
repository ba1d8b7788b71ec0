"""Supervised unlearning (issue 10): every method and baseline on each built-in task, against gold.

    python benchmarks/supervised.py            # about 8 minutes on 2 CPU cores
    python benchmarks/supervised.py --skip-timing --readme
    python benchmarks/supervised.py --from-json --readme   # only re-print (and rewrite README) from the JSON

Cases: the `regression` preset (synthetic, one whole group forgotten), the same methods on
scikit-learn's diabetes (30 % of the train samples forgotten at random) with a target trained 20
epochs and one trained 40 epochs (it memorises: train RMSE half its test RMSE), the `digits` preset
(class 3 forgotten; the target trains on 10 % of digits for 200 epochs, so it memorises) and digits
with 20 % random samples forgotten. Method settings other than the presets' are in DIABETES and
DIABETES_MEMORISED below; every table names the settings that differ from a method's defaults.

Each case runs on seeds 0-19 (each seed: its own split, target, gold and unlearning). The table
shows seed 0; beside it, on how many of the 20 seeds each method meets the issue's bar (forget
within 10 % of gold, retain and test at most 10 % worse than the target), and the plain MIA AUC of
target and gold over the seeds (mean, sd, min, max), with the sd that chance alone gives an AUC of
two samples from one distribution at the case's forget / forget_test sizes (Hanley & McNeil): gold's
AUC compares forgotten samples with unseen ones of the same distribution, so its spread is that.
Unless --skip-timing, each preset is timed as `/usr/bin/time -v obliviate run --config <preset>`.

Writes benchmarks/results/supervised.json and prints markdown; --readme rewrites the README block.
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
from obliviate.supervised.metrics import chance_auc_sd
from obliviate.supervised.pipeline import run_supervised
from obliviate.supervised.registry import supervised_methods
from obliviate.supervised.report import main_metric

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_block import write_block  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "supervised.json"
# gaussian_ft runs at its defaults on diabetes (30 mixed passes, lr 1e-3, retain held to the target's outputs):
# `{}` drops the regression preset's lr 3e-4, set for the synthetic task (at 1e-3 it overshoots there).
DIABETES = ["task=diabetes", "name=diabetes", "forget.kind=random", "forget.fraction=0.3", "train.epochs=20",
            "method_args.blindspot={epochs: 5, forget_weight: 1.0, blindspot_epochs: 3}",
            "method_args.gaussian_ft={}"]
DIABETES_MEMORISED = ["task=diabetes", "name=diabetes-40", "forget.kind=random", "forget.fraction=0.3",
                      # trained 40 epochs, the target memorises its 265 train samples: a longer budget
                      "method_args.retain_ft={epochs: 60}",
                      "method_args.random_labels={epochs: 60, forget_weight: 0.5, lr: 0.0003}",
                      "method_args.blindspot={epochs: 60, forget_weight: 2.0, blindspot_epochs: 3, lr: 0.001}",
                      "method_args.gaussian_ft={}"]
CASES = {  # name: (preset, overrides)
    "synthetic, group forgotten": ("regression", []),
    "diabetes, 30 % random, target trained 20 epochs": ("regression", DIABETES),
    "diabetes, 30 % random, target trained 40 epochs (memorises)": ("regression", DIABETES_MEMORISED),
    "digits, class 3 forgotten": ("digits", []),
    "digits, 20 % random": ("digits", ["name=digits-random", "forget.kind=random", "forget.fraction=0.2"]),
}
SEEDS = range(20)
COLUMNS = ("forget_{m}", "retain_{m}", "test_{m}", "mia_auc", "mia_ref_auc", "act_dist")


def summary(values: list[float]) -> dict:
    return {"mean": round(statistics.mean(values), 4), "sd": round(statistics.stdev(values), 4),
            "min": min(values), "max": max(values)}


def non_default_settings(cfg) -> dict[str, dict]:
    """Per method, the settings the case gives it that differ from the method's defaults."""
    out = {}
    for name in cfg.methods:
        cls = supervised_methods().get(name).config_class
        given, default = cfg.method_config(name).model_dump(mode="json"), cls().model_dump(mode="json")
        out[name] = {k: v for k, v in given.items() if v != default[k]}
    return out


def run_case(preset: str, overrides: list[str]) -> dict:
    """Every seed's full run; seed 0's rows for the table, bar passes and MIA AUC over all seeds."""
    per_seed = []
    for seed in SEEDS:
        report = run_supervised(load_supervised_config(preset, [*overrides, f"seed={seed}"]), write=False)
        per_seed.append(report)
    first, m = per_seed[0], main_metric(per_seed[0]["task"]["kind"])
    rows = {name: {k.format(m=m): round(row[k.format(m=m)], 4) for k in COLUMNS}
            | {"bar": first["acceptance"][name] if name not in ("target", "gold") else None,
               "seconds": first["unlearning"].get(name, {}).get("seconds")}
            for name, row in first["models"].items()}
    aucs = {name: [round(r["models"][name]["mia_auc"], 4) for r in per_seed] for name in first["models"]}
    passes = {name: sum(r["acceptance"][name]["pass"] for r in per_seed) for name in first["acceptance"]
              if name not in ("target", "gold")}
    sizes = first["benchmark"]
    gold, target = aucs["gold"], aucs["target"]
    return {"preset": preset, "overrides": overrides, "metric": m, "sizes": sizes,
            "settings": non_default_settings(load_supervised_config(preset, overrides)), "models": rows,
            "seeds": len(SEEDS), "bar_passes_over_seeds": passes,
            "mia_auc_over_seeds": {name: summary(a) for name, a in aucs.items()},
            "gold_mia_within_0.05": sum(abs(a - 0.5) <= 0.05 for a in gold),
            "target_mia_above_gold": sum(t > g for t, g in zip(target, gold)),
            "chance_auc_sd": round(chance_auc_sd(sizes["forget"], sizes["forget_test"]), 4),
            "target_mia_auc_seeds": target, "gold_mia_auc_seeds": gold}


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
    parser.add_argument("--readme", action="store_true", help="rewrite the supervised block in README.md")
    parser.add_argument("--from-json", action="store_true", help="only print (and --readme) the saved results")
    args = parser.parse_args()
    if args.from_json:
        result = json.loads(OUT.read_text())
    else:
        torch.set_num_threads(1)
        cases = {}
        for case, (preset, overrides) in CASES.items():
            t = time.perf_counter()
            cases[case] = run_case(preset, overrides) | {"seconds": round(time.perf_counter() - t, 1)}
            print(f"{case}: {cases[case]['seconds']} s", file=sys.stderr)
        timing = {} if args.skip_timing else {p: time_preset(p) for p in ("regression", "digits")}
        result = {"benchmark": "supervised", "cases": cases, "preset_timing": timing, "environment": environment()}
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    print(table)
    if args.readme:
        write_block("supervised-table", table)


def settings_line(settings: dict[str, dict]) -> str:
    parts = [f"`{name}` " + (", ".join(f"{k} {v}" for k, v in given.items()) if given else "defaults")
             for name, given in settings.items()]
    return "Settings (those differing from each method's defaults): " + "; ".join(parts) + "."


def markdown(result: dict) -> str:
    lines = []
    for case, c in result["cases"].items():
        unit = "RMSE" if c["metric"] == "rmse" else "acc"
        n, mia = c["seeds"], c["mia_auc_over_seeds"]
        g, t = mia["gold"], mia["target"]
        lines += [f"\n**{case}** ({', '.join(f'{k} {v}' for k, v in c['sizes'].items())})\n",
                  f"MIA AUC (forget vs forget_test) over {n} seeds: gold mean {g['mean']:.3f}, sd {g['sd']:.3f} "
                  f"(chance alone: {c['chance_auc_sd']:.3f}), range {g['min']:.3f}-{g['max']:.3f}, "
                  f"{c['gold_mia_within_0.05']}/{n} within 0.5 ± 0.05; target mean {t['mean']:.3f}, sd "
                  f"{t['sd']:.3f}, range {t['min']:.3f}-{t['max']:.3f}, above gold's on "
                  f"{c['target_mia_above_gold']}/{n} seeds. {settings_line(c['settings'])}\n",
                  f"| model | forget {unit} | retain {unit} | test {unit} | MIA AUC | MIA AUC (gold-calibrated) "
                  f"| act. dist. to gold | bar (seed 0) | bar met, seeds 0-{n - 1} | MIA AUC mean (min-max) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in c["models"].items():
            bar = "" if r["bar"] is None else ("pass" if r["bar"]["pass"] else "fail: " + ", ".join(
                k.split("_")[0] for k, ok in r["bar"].items() if k != "pass" and not ok))
            seeds = "" if name not in c["bar_passes_over_seeds"] else f"{c['bar_passes_over_seeds'][name]}/{n}"
            a, m = mia[name], c["metric"]
            lines.append(f"| {name} | {r[f'forget_{m}']:.3f} | {r[f'retain_{m}']:.3f} | {r[f'test_{m}']:.3f} | "
                         f"{r['mia_auc']:.3f} | {r['mia_ref_auc']:.3f} | {r['act_dist']:.3f} | {bar} | {seeds} | "
                         f"{a['mean']:.3f} ({a['min']:.3f}-{a['max']:.3f}) |")
    for preset, t in result["preset_timing"].items():
        lines.append(f"\n`obliviate run --config {preset}`: {t['wall_s']} s wall, peak RSS {t['peak_rss_mib']} MiB")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
