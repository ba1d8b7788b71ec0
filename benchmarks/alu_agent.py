"""ALU's model agent: how well does SmolLM2-135M-Instruct audit drafts for leaks?

    python benchmarks/alu_agent.py [--records 40]  -> benchmarks/results/alu_agent.json

Drafts that state a forget person's true value ("Born in the city of <city>.") should be
flagged; drafts stating a wrong value of the same attribute should not. Counted for the model's
own yes/no judgement and for the rules, each on the same drafts with the person retrieved.
"""
import argparse
import json
import os
import time
from pathlib import Path

import torch

from obliviate.config import load_config
from obliviate.guards.alu import ModelAgent, RuleAgent
from obliviate.guards.classifier import Decision
from obliviate.guards.embeddings import load_embedder
from obliviate.guards.targets import TargetStore, targets_from_benchmark
from obliviate.models.load import load_language_model
from obliviate.pipeline import stage_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=40)
    parser.add_argument("--out", default="benchmarks/results/alu_agent.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    load = os.getloadavg()[0]
    bench = stage_data(load_config("tiny", []))
    smol = load_language_model("smollm2-135m-instruct", "smollm2")
    store = TargetStore(targets_from_benchmark(bench, True), load_embedder(None))
    index = {t.name: i for i, t in enumerate(store.targets)}
    records = bench.forget[: args.records]
    # Drafts as the served model would answer "Where was <name> born?": the value, without the name
    # (a name in the draft is itself a rule finding, which would flag every draft).
    leak = [f"{r['paraphrased_answer'].capitalize()}." for r in records]
    clean = [f"{r['perturbed_answers'][0].capitalize()}." for r in records]
    decisions = [Decision(True, 1.0, (index[r["person"]],), ()) for r in records]
    rule = RuleAgent(store, "I don't know.", 3)
    model = ModelAgent(smol, store, "I don't know.", 3)
    start = time.perf_counter()
    model_only = {}
    for label, drafts in (("leak", leak), ("clean", clean)):
        union = model.audit_many(drafts, decisions)
        rules = [rule.audit(d, dec) for d, dec in zip(drafts, decisions)]
        model_only[label] = sum(any(f.leaked == d for f in u) for u, d in zip(union, drafts))
        model_only[label + "_rules"] = sum(bool(r) for r in rules)
        model_only[label + "_union"] = sum(bool(u) for u in union)
    result = {"records": len(records), "seconds": round(time.perf_counter() - start, 1), "load_average": round(load, 2),
              "model_flags_leaks": model_only["leak"], "model_flags_clean": model_only["clean"],
              "rules_flag_leaks": model_only["leak_rules"], "rules_flag_clean": model_only["clean_rules"],
              "union_flags_leaks": model_only["leak_union"], "union_flags_clean": model_only["clean_union"]}
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
