"""Multiple-choice accuracy of the knowledge request's four groups every N unlearning steps, for tuning.

    python benchmarks/smollm2_knowledge_trajectory.py --method npo_kl --every 10 \
        --set method_args.npo_kl.steps=40 --set method_args.npo_kl.lr=0.005 --set method_args.npo_kl.retain_weight=10

Runs one method of the smollm2 preset on the request that benchmarks/smollm2_knowledge.py wrote
(run that first, or `--request-only` of it), on one thread, and prints after every `--every` steps
the accuracy on the 10 forgotten capitals, the 30 other capitals, the 30 symbols and the 30 sums.
No verification and nothing saved: a quick look at where a setting goes before a full run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch

REQUEST = Path(__file__).parent / "results" / "smollm2_knowledge_request" / "request.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="npo_kl")
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--request", default=str(REQUEST))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from obliviate.config import load_config
    from obliviate.evals.multiple_choice import choice_accuracy, world_choice_questions
    from obliviate.methods import METHODS
    from obliviate.methods.base import Unlearner
    from obliviate.models.hf import HFLanguageModel, plain_prompts
    from obliviate.models.load import load_language_model
    from obliviate.requests.forget import prepare

    questions = world_choice_questions()
    probes = {json.loads(line)["question"] for line in open(Path(args.request).parent / "reference.jsonl")}
    forgotten = [i for i, q in enumerate(questions[:40]) if q["question"] in probes]
    groups = {"forgotten": forgotten, "other capitals": [i for i in range(40) if i not in forgotten],
              "symbols": list(range(40, 70)), "sums": list(range(70, 100))}

    def score(lm) -> dict:
        acc = choice_accuracy(lm, questions)
        return {g: round(sum(acc[i] for i in idx) / len(idx), 3) for g, idx in groups.items()}

    start = time.perf_counter()

    def watch(self, model, tokenizer, records, stop_at):  # replaces early stopping: score, never stop
        def check(step: int, loss: float) -> bool:
            if (step + 1) % args.every == 0:
                model.eval()
                print(f"step {step + 1} loss {loss:.3f} {score(HFLanguageModel(model, tokenizer))} "
                      f"[{time.perf_counter() - start:.0f} s]", flush=True)
                model.train()
            return False
        return check

    Unlearner._early_stop = watch
    lm = load_language_model("smollm2-135m-instruct", name="before")
    print("before", score(lm), flush=True)
    cfg = load_config("smollm2", [*args.overrides, f"method_args.{args.method}.eval_every={args.every}"])
    data, bench = prepare(args.request, cfg)
    with plain_prompts(lm) if data.prompt_format == "plain" else contextlib.nullcontext():
        METHODS.get(args.method)(cfg.method_config(args.method)).unlearn(lm, bench, seed=0, stop_at=-1.0)


if __name__ == "__main__":
    main()
