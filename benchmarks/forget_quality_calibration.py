"""Do forget quality and PrivLeak separate "knows the forget set" from "never saw it"?

    python benchmarks/forget_quality_calibration.py [--config tiny] [--seeds 1 2]

Forget quality is the KS p-value between a model's forget-set truth ratios and the gold model's.
The target (trained on the forget set) should give p < 0.01; gold models retrained with other
seeds (never trained on it) should give p >= 0.05. Likewise PrivLeak (Min-K% AUC relative to
gold's, in %) should be clearly positive for the target and within ±5 of 0 for other golds, and
gold's raw Min-K% AUC should be near 0.5. Reuses the run's cached target and gold.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from obliviate.config import load_config
from obliviate.evals import evaluate
from obliviate.pipeline import stage_data, stage_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default="benchmarks/results/forget_quality_calibration.json")
    args = parser.parse_args()
    cfg = load_config(args.config, [])
    bench = stage_data(cfg)
    models = stage_models(cfg, bench)
    gold = evaluate(models["gold"], bench)
    ratios, auc = gold["forget_truth_ratio"].per_example, gold["privleak_auc"].value
    rows = {f"gold (seed {cfg.seed})": evaluate(models["gold"], bench, ratios, gold_privleak_auc=auc),
            f"target (seed {cfg.seed})": evaluate(models["target"], bench, ratios, gold_privleak_auc=auc)}
    for seed in args.seeds:
        other = cfg.model_copy(update={"seed": seed})
        rows[f"gold (seed {seed})"] = evaluate(stage_models(other, bench, ("gold",))["gold"], bench, ratios,
                                               gold_privleak_auc=auc)
    table = {name: {k: r[k].value for k in ("forget_acc", "retain_acc", "world_acc", "forget_truth_ratio",
                                            "forget_quality", "mia_min_k_auc", "priv_leak", "verbmem_forget")}
             for name, r in rows.items()}
    print(f"forget quality vs gold (seed {cfg.seed}), {len(ratios)} forget questions")
    for name, row in table.items():
        print(f"  {name:16s}", "  ".join(f"{k}={v:.3g}" for k, v in row.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"config": args.config, "reference": f"gold (seed {cfg.seed})",
                                          "rows": table}, indent=1) + "\n")


if __name__ == "__main__":
    main()
