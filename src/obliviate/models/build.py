"""Target and gold models: trained with one recipe, cached by a hash of what produced them.

target = trained on world + forget + retain;  gold = world + retain (never saw the forget set),
the ideal every unlearning method is measured against.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from obliviate.data import Benchmark
from obliviate.io import atomic_dir
from obliviate.models.hf import HFLanguageModel
from obliviate.models.settings import TinyModelConfig, TrainConfig
from obliviate.models.tokenizer import train_tokenizer
from obliviate.parallel import process_pool

ROLES = {"target": ("world", "forget", "retain"), "gold": ("world", "retain")}


def train_role(role: str, bench_dir: str, tokenizer_dir: str, out: str, model_cfg: dict, train_cfg: dict,
               seed: int, threads: int) -> list[float]:
    """Train one model from scratch on the splits of `role` and save it (runs in a worker process)."""
    from transformers import AutoTokenizer

    from obliviate.models.tiny import build_tiny_model
    from obliviate.models.train import train_causal_lm

    torch.set_num_threads(threads)
    bench, tok = Benchmark.load(bench_dir), AutoTokenizer.from_pretrained(tokenizer_dir)
    model = build_tiny_model(TinyModelConfig(**model_cfg), tok, seed)
    history = train_causal_lm(model, tok, bench.training_examples(ROLES[role]), TrainConfig(**train_cfg), seed,
                              desc=f"training {role}")
    with atomic_dir(out) as tmp:
        HFLanguageModel(model, tok, role).save(tmp)
    return history


def build_models(bench: Benchmark, bench_dir: Path, out_dir: Path, model_cfg: TinyModelConfig,
                 train_cfg: TrainConfig, seed: int, roles: tuple[str, ...] = ("target", "gold"),
                 threads: int | None = None) -> dict[str, HFLanguageModel]:
    """Load the cached models under `out_dir`, training the missing ones side by side.

    Tiny models barely use a second thread, so two single-threaded processes (one per model)
    train both in about the time of one.
    """
    tok_dir = out_dir / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        with atomic_dir(tok_dir) as tmp:
            train_tokenizer(bench.all_text(), model_cfg.vocab_size).save_pretrained(tmp)
    missing = [r for r in roles if not (out_dir / r / "config.json").is_file()]
    cores = threads or os.cpu_count() or 1
    workers = max(1, min(len(missing), cores))
    args = [(r, str(bench_dir), str(tok_dir), str(out_dir / r), model_cfg.model_dump(), train_cfg.model_dump(),
             seed, max(1, cores // workers)) for r in missing]
    if workers > 1:
        with process_pool(workers) as pool:
            list(pool.map(train_role, *zip(*args)))
    else:
        for a in args:
            train_role(*a)
    return {r: HFLanguageModel.load(out_dir / r, name=r) for r in roles}
