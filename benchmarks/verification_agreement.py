"""Does the gold-free verdict agree with the gold-based one? Calibration on tiny, where both references exist.

    python benchmarks/verification_agreement.py [--config tiny] [--seeds 0,1,2] [--methods npo_rt,rmu]
    python benchmarks/verification_agreement.py --seeds 1 --out /tmp/seed1.json   # one seed per process
    python benchmarks/verification_agreement.py --merge /tmp/seed0.json /tmp/seed1.json /tmp/seed2.json

Per seed: the run's target and gold; the three controls (gold retrained with seed + 1: removed;
the target behind `guard`: suppressed; the untouched target: not forgotten); every weight-space
method and inference-time guard, unlearned as `obliviate run` does. Each candidate is attacked
once on the forget people; the gold-based verdict compares that with gold under the same attacks
(paired), the gold-free one with the candidate itself on the 30 holdout people (unpaired,
`obliviate.requests.verify.verify_data`). Writes benchmarks/results/verification_agreement.json:
every verdict pair, the confusion matrix (rows gold-based, columns gold-free), the agreement rate
over controls and over (method, seed) pairs, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from obliviate.attacks.controls import EXPECTED, build_controls
from obliviate.attacks.verdict import VERDICTS
from obliviate.config import load_config
from obliviate.methods import METHODS
from obliviate.pipeline import attack_all, judge_against_gold, stage_data, stage_models, stage_unlearn
from obliviate.requests.forget import settings_of
from obliviate.requests.verify import verify_data
from obliviate.table import deciding_text

OUT = Path(__file__).parent / "results" / "verification_agreement.json"


def candidates_of() -> list[str]:
    return [n for n in METHODS.names() if METHODS.get(n).__module__.startswith(
        ("obliviate.methods.weight_space.", "obliviate.guards."))]


def run_seed(config: str, seed: int, methods: list[str], overrides: list[str]) -> list[dict]:
    cfg = load_config(config, [f"seed={seed}", "threads=1", f"methods={methods}", *overrides])
    bench = stage_data(cfg)
    models = stage_models(cfg, bench)
    candidates = {"target": (models["target"], EXPECTED["target"]), **build_controls(cfg, bench, models["target"])}
    for name in methods:
        candidates[name] = (stage_unlearn(cfg, name, models["target"], bench, models["gold"])[0], None)
    gold = attack_all(models["gold"], bench, cfg)
    settings, rows = settings_of(cfg), []
    for name, (lm, expected) in candidates.items():
        start = time.perf_counter()
        own = attack_all(lm, bench, cfg)
        changes = getattr(lm, "changes_weights", True)
        with_gold = judge_against_gold(own, gold, cfg, changes)
        gold_free = verify_data(lm, bench, settings, forget_side=own[0], passages=cfg.attacks.passages)
        rows.append({"seed": seed, "model": name, "control": expected is not None, "expected": expected,
                     "gold_based": with_gold["verdict"], "gold_free": gold_free["verdict"],
                     "gold_based_reason": deciding_text(with_gold), "gold_free_reason": deciding_text(gold_free),
                     "seconds": round(time.perf_counter() - start, 1),
                     "evidence": {"gold_based": with_gold["evidence"], "gold_free": gold_free["evidence"]}})
        r = rows[-1]
        print(f"seed {seed} {name}: gold {r['gold_based']} | gold-free {r['gold_free']}"
              f"{'' if expected is None else f' (expected {expected})'}  [{r['seconds']} s]\n"
              f"    gold: {r['gold_based_reason']}\n    free: {r['gold_free_reason']}", flush=True)
    return rows


def summary(rows: list[dict]) -> dict:
    matrix = {a: {b: 0 for b in VERDICTS} for a in VERDICTS}
    for r in rows:
        matrix[r["gold_based"]][r["gold_free"]] += 1
    controls = [r for r in rows if r["control"]]
    methods = [r for r in rows if not r["control"]]
    agree = lambda rs: sum(r["gold_based"] == r["gold_free"] for r in rs) / len(rs) if rs else None  # noqa: E731
    return {"confusion_gold_rows_free_columns": matrix, "controls_agreement": agree(controls),
            "controls_as_expected_gold_based": all(r["gold_based"] == r["expected"] for r in controls),
            "controls_as_expected_gold_free": all(r["gold_free"] == r["expected"] for r in controls),
            "method_pairs": len(methods), "method_agreement": agree(methods)}


def readme_table(result: dict) -> str:
    """The README block: agreement figures, the confusion matrix, and every (model, seed) verdict pair."""
    m, short = result["confusion_gold_rows_free_columns"], {"not forgotten": "not forg.", "inconclusive": "inconcl."}
    lines = [f"Seeds {result['seeds']}: controls agree {result['controls_agreement']:.0%} "
             f"(as expected: gold-based {result['controls_as_expected_gold_based']}, gold-free "
             f"{result['controls_as_expected_gold_free']}); methods and guards agree "
             f"{result['method_agreement']:.0%} of {result['method_pairs']} (method, seed) pairs.", "",
             "| gold-based \\ gold-free | " + " | ".join(VERDICTS) + " |", "| --- " * (len(VERDICTS) + 1) + "|"]
    lines += [f"| {a} | " + " | ".join(str(m[a][b]) for b in VERDICTS) + " |" for a in VERDICTS]
    seeds = sorted({r["seed"] for r in result["rows"]})
    key = lambda r: "gold, seed + 1" if r["model"].startswith("gold_seed") else r["model"]  # noqa: E731
    names = list(dict.fromkeys(key(r) for r in result["rows"]))
    cell = {(key(r), r["seed"]): r for r in result["rows"]}
    lines += ["", "| model | " + " | ".join(f"seed {s}: gold / gold-free" for s in seeds) + " |",
              "| --- " * (len(seeds) + 1) + "|"]
    for n in names:
        row = [cell.get((n, s)) for s in seeds]
        first = next(r for r in row if r is not None)
        label = n + (f" (control, expected {first['expected']})" if first["control"] else "")
        lines.append(f"| {label} | " + " | ".join(
            "—" if r is None else f"{short.get(r['gold_based'], r['gold_based'])} / "
            f"{short.get(r['gold_free'], r['gold_free'])}" for r in row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=",".join(candidates_of()))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value on the preset")
    parser.add_argument("--merge", nargs="+", type=Path, help="combine per-seed result files into --out")
    parser.add_argument("--readme", action="store_true", help="rewrite the README's verification-agreement block")
    args = parser.parse_args()
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        rows = [r for part in parts for r in part["rows"]]
        result = {"config": parts[0]["config"], "seeds": ",".join(p["seeds"] for p in parts),
                  "load_average_before": [p["load_average_before"] for p in parts],
                  "load_average_after": [p["load_average_after"] for p in parts],
                  "seconds": [p["seconds"] for p in parts], **summary(rows), "rows": rows}
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
        print(readme_table(result))
        if args.readme:
            from readme_block import write_block

            write_block("verification-agreement", readme_table(result))
        return
    torch.set_num_threads(1)  # seeds run as parallel processes on a 2-core machine
    load = os.getloadavg()[0]
    start = time.perf_counter()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rows += run_seed(args.config, seed, [m for m in args.methods.split(",") if m], args.overrides)
    result = {"config": args.config, "overrides": args.overrides, "seeds": args.seeds, "load_average_before": round(load, 2),
              "load_average_after": round(os.getloadavg()[0], 2), "seconds": round(time.perf_counter() - start, 1),
              **summary(rows), "rows": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
