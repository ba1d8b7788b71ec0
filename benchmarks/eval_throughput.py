"""Throughput of the log-probability metrics vs a raw batched forward pass over the same tokens.

    python benchmarks/eval_throughput.py [--repeats 3] [--out benchmarks/results/eval_throughput.json]

Both sides see the same padded (length-sorted) batches of the same texts (every QA of the tiny benchmark as full
text, as membership inference scores them). "raw" is the model's forward pass alone on
pre-tokenized tensors; "log_probs" is `HFLanguageModel.log_probs` end to end (tokenizing,
padding, forward, log-softmax, gathering per-token values). Best of `repeats` runs each.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from obliviate.config import RunConfig
from obliviate.data import QA_SPLITS, build_benchmark, format_answer, format_prompt
from obliviate.models.hf import HFLanguageModel
from obliviate.models.tiny import build_tiny_model
from obliviate.models.tokenizer import train_tokenizer


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/eval_throughput.json")
    args = parser.parse_args()
    cfg = RunConfig()
    bench = build_benchmark(cfg.data)
    tok = train_tokenizer(bench.all_text(), cfg.model.vocab_size)
    lm = HFLanguageModel(build_tiny_model(cfg.model, tok, 0), tok)
    texts = [format_prompt(r["question"]) + format_answer(r["answer"]) for s in QA_SPLITS for r in bench.split(s)]
    prompts = [""] * len(texts)
    # The raw pass gets exactly the padded batches the metrics use, already tokenized.
    batches = list(lm.scoring_batches(prompts, texts))
    tokens = sum(int(mask.sum()) for _, _, mask, _ in batches)

    @torch.no_grad()
    def raw() -> None:
        for _, ids, mask, _ in batches:
            lm.model(input_ids=ids, attention_mask=mask)

    results = {"texts": len(texts), "tokens": tokens, "batch_size": lm.batch_size,
               "threads": torch.get_num_threads()}
    for name, fn in (("raw_forward", raw), ("log_probs", lambda: lm.log_probs(prompts, texts)),
                     ("token_stats", lambda: lm.token_stats(prompts, texts))):
        if name == "token_stats" and not hasattr(lm, "token_stats"):
            continue
        seconds = best_of(args.repeats, fn)
        results[name] = {"seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds)}
    for name in ("log_probs", "token_stats"):
        if name in results:
            results[f"{name}_vs_raw"] = round(results[name]["tokens_per_s"] / results["raw_forward"]["tokens_per_s"], 3)
    print(json.dumps(results, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
