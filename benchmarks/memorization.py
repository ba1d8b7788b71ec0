"""Why the tiny preset trains the way it does: memorisation speed of recipe variants, side by side.

    python benchmarks/memorization.py [--epochs 12] [--out benchmarks/results/memorization.json]

Each variant trains a target model (world + forget + retain) from scratch for the same number of
epochs and reports greedy exact-match accuracy every 4 epochs. Variants run two at a time, one
thread each, so their wall times are comparable with each other.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

VARIANTS = {
    "shipped (init std 0.08, batch 32)": {},
    "init std 0.02 (transformers default)": {"model": {"init_std": 0.02}},
    "batch 16": {"train": {"batch_size": 16}},
    "no biographies": {"no_bios": True},
}


def train_variant(name: str, change: dict, epochs: int) -> dict:
    import torch

    from obliviate.config import RunConfig
    from obliviate.data import build_benchmark, format_prompt
    from obliviate.models.build import ROLES
    from obliviate.models.hf import HFLanguageModel
    from obliviate.models.tiny import build_tiny_model
    from obliviate.models.tokenizer import train_tokenizer
    from obliviate.models.train import train_causal_lm

    torch.set_num_threads(1)
    base = RunConfig().model_dump()
    cfg = RunConfig(**{**base, "model": {**base["model"], **change.get("model", {})},
                       "train": {**base["train"], **change.get("train", {}), "epochs": epochs}})
    bench = build_benchmark(cfg.data)
    tok = train_tokenizer(bench.all_text(), cfg.model.vocab_size)
    model = build_tiny_model(cfg.model, tok, cfg.seed)
    examples = bench.training_examples(ROLES["target"])
    if change.get("no_bios"):
        examples = [e for e in examples if e[0]]
    lm, curve, start = HFLanguageModel(model, tok), [], time.perf_counter()

    def accuracy(epoch: int, loss: float) -> None:
        if (epoch + 1) % 4 and epoch + 1 != epochs:
            return
        row = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - start, 1), "loss": round(loss, 3)}
        for split in ("forget", "retain", "world"):
            qa = bench.split(split)
            answers = lm.generate([format_prompt(r["question"]) for r in qa], 12)
            row[split] = round(sum(a == r["answer"] for a, r in zip(answers, qa)) / len(qa), 3)
        curve.append(row)

    train_causal_lm(model, tok, examples, cfg.train, cfg.seed, on_epoch_end=accuracy)
    return {"variant": name, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", default="benchmarks/results/memorization.json")
    args = parser.parse_args()
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(train_variant, VARIANTS, VARIANTS.values(), [args.epochs] * len(VARIANTS)))
    for r in results:
        print(r["variant"])
        for row in r["curve"]:
            print("   ", row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
