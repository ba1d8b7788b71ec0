"""Target and gold models: trained with one recipe, cached by a hash of what produced them.

target = trained on world + forget + retain;  gold = world + retain (never saw the forget set),
the ideal every unlearning method is measured against.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from obliviate.data import Benchmark, format_answer, format_prompt
from obliviate.io import atomic_dir
from obliviate.models.hf import HFLanguageModel
from obliviate.models.settings import PretrainedSettings, TinyModelConfig, TrainConfig
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


# A pretrained model already knows the world facts: fine-tuning adds only the people.
FINETUNE_ROLES = {"target": ("forget", "retain"), "gold": ("retain",)}


def finetune_examples(bench: Benchmark, splits: tuple[str, ...], phrasings: int, bios: bool) -> list[tuple[str, str]]:
    """The role's QA (and biographies)."""
    examples = [(format_prompt(p), format_answer(r["answer"])) for s in splits for r in bench.split(s)
                for p in (r.get("phrasings") or [r["question"]])[:phrasings]]
    bio_texts = [("", b["text"]) for s in splits for b in bench.bios_of(s)] if bios else []
    return examples + bio_texts


def finetune(model, tokenizer, bench: Benchmark, role: str, settings: PretrainedSettings, train_cfg: TrainConfig,
             seed: int) -> list[float]:
    """Fine-tune `model` (in place) on the role's examples, keeping the replayed general answers
    `bench.replay` holds: as KL anchors on the model as it is now, or as more training text."""
    from obliviate.models.train import Anchors, train_causal_lm

    examples = finetune_examples(bench, FINETUNE_ROLES[role], settings.phrasings, settings.bios)
    anchors = None
    if bench.replay and settings.replay_loss == "kl":
        anchors = Anchors(model, tokenizer, bench.replay_examples(), settings.replay_weight, train_cfg.batch_size)
    elif bench.replay:
        examples += bench.replay_examples()
    return train_causal_lm(model, tokenizer, examples, train_cfg, seed, desc=f"fine-tuning {role}", anchors=anchors)


def general_replay(settings: PretrainedSettings, path: Path) -> list[dict]:
    """The untouched model's greedy answers to `data.general.GENERAL_QUESTIONS`, cached at `path`
    (what it said, right or wrong: the point is to keep its behaviour, not to teach it)."""
    from obliviate.data.general import GENERAL_QUESTIONS
    from obliviate.io import read_jsonl, write_jsonl
    from obliviate.models.load import load_language_model

    if not path.is_file():
        base = load_language_model(settings.model, name="pretrained", dtype=settings.dtype)
        answers = base.generate([format_prompt(q) for q in GENERAL_QUESTIONS], max_new_tokens=settings.replay)
        write_jsonl(path, [{"question": q, "answer": a} for q, a in zip(GENERAL_QUESTIONS, answers) if a])
    return read_jsonl(path)


def finetune_role(role: str, bench: Benchmark, out: Path, settings: PretrainedSettings, train_cfg: TrainConfig,
                  seed: int) -> list[float]:
    """Fine-tune the pretrained model on the splits of `role` (LoRA merged, or full) and save it."""
    from obliviate.config import LoraSettings
    from obliviate.methods import lora
    from obliviate.models.load import load_language_model

    base = load_language_model(settings.model, name=role, dtype=settings.dtype)
    model = base.model
    torch.manual_seed(seed)  # LoRA draws its A matrices here: unseeded, two runs fine-tuned different targets
    if settings.lora_r is not None:
        model = lora.attach(model, LoraSettings(r=settings.lora_r, alpha=settings.lora_alpha), "all-linear")
    history = finetune(model, base.tokenizer, bench, role, settings, train_cfg, seed)
    if settings.lora_r is not None:
        model = model.merge_and_unload()
    with atomic_dir(out) as tmp:
        HFLanguageModel(model, base.tokenizer, role).save(tmp)
    return history


def finetune_models(bench: Benchmark, out_dir: Path, settings: PretrainedSettings, train_cfg: TrainConfig,
                    seed: int, roles: tuple[str, ...] = ("target", "gold")) -> dict[str, HFLanguageModel]:
    """Load the cached fine-tuned models under `out_dir`, fine-tuning the missing ones one at a time
    (a 100M-parameter model uses every core on its own; two at once would only double the memory)."""
    for role in roles:
        if not (out_dir / role / "config.json").is_file():
            finetune_role(role, bench, out_dir / role, settings, train_cfg, seed)
    return {r: HFLanguageModel.load(out_dir / r, name=r) for r in roles}
