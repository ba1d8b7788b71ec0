"""The built-in benchmark: splits of fictitious-people QA, biographies and world facts.

    from obliviate.data import build_benchmark, DataConfig
    bench = build_benchmark(DataConfig(people=100, forget_fraction=0.1, seed=0))
    bench.save("runs/x/data"); Benchmark.load("runs/x/data")
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from obliviate.data.people import biography, make_people, qa_pairs
from obliviate.data.world import world_facts
from obliviate.io import read_jsonl, write_jsonl

QA_SPLITS = ("forget", "retain", "holdout", "world", "neighbours")
# Bump when the generator's output changes for the same config: cached artefacts are keyed by it.
GENERATOR_VERSION = 2


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, description="seed of the generator; same seed, same benchmark")
    people: int = Field(100, ge=2, description="people the target is trained on (forget + retain)")
    holdout_people: int = Field(20, ge=1, description="people never trained on (membership non-members)")
    forget_fraction: float = Field(0.1, description="share of trained people in the forget split, in (0, 1)")
    world_sums: int = Field(40, ge=0, description="arithmetic questions in the world split")
    perturbed: int = Field(3, ge=1, le=10, description="perturbed (false) answers per question")
    world_facts: int | None = Field(None, ge=1, description="cap on world QA records, taken evenly across "
                                    "capitals, symbols and sums (None: all); cheaper evaluation of large models")
    path: str | None = Field(None, description="a local TOFU or MUSE folder to use instead of the built-in "
                             "people (obliviate.data.loaders); None: the built-in benchmark")
    format: Literal["auto", "tofu", "muse"] = Field("auto", description="format of data.path: auto, tofu or muse")
    forget_split: str | None = Field(None, description="TOFU split file of the forget set (default forget10)")
    retain_split: str | None = Field(None, description="TOFU split file of the retain set (default retain90)")

    def external_fields(self) -> set[str]:
        """Fields added after the built-in cache keys were set, left out of them while unset
        (so older caches stay valid)."""
        return {"path", "format", "forget_split", "retain_split"} | ({"world_facts"} if self.world_facts is None else set())

    @field_validator("forget_fraction")
    @classmethod
    def _fraction_open_interval(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError(f"forget_fraction must be in (0, 1), got {v!r}; e.g. 0.01, 0.05 or 0.1")
        return v


def format_prompt(question: str) -> str:
    """The one prompt format every model is trained and queried with."""
    return f"Question: {question}\nAnswer:"


def format_answer(answer: str) -> str:
    return f" {answer}"


@dataclass
class Benchmark:
    forget: list[dict]
    retain: list[dict]
    holdout: list[dict]
    world: list[dict]
    neighbours: list[dict]
    bios: list[dict] = field(default_factory=list)  # {"person", "split", "text"}
    # {"question", "answer"}: a pretrained model's own answers to general questions, kept in its
    # fine-tuning and in every method's retain data, never evaluated (see `data.general`). Cached
    # with the models it came from (`models.build.general_replay`), not saved with the benchmark.
    replay: list[dict] = field(default_factory=list)

    def split(self, name: str) -> list[dict]:
        if name not in QA_SPLITS:
            raise KeyError(f"unknown split {name!r}; known: {', '.join(QA_SPLITS)}")
        return getattr(self, name)

    def bios_of(self, split: str) -> list[dict]:
        return [b for b in self.bios if b["split"] == split]

    def people(self, split: str) -> list[str]:
        return sorted({r["person"] for r in self.split(split)})

    def training_examples(self, splits: tuple[str, ...]) -> list[tuple[str, str]]:
        """(prompt, completion) pairs: every trained phrasing of each QA, plus biographies."""
        examples = []
        for s in splits:
            for r in self.split(s):
                examples += [(format_prompt(p), format_answer(r["answer"])) for p in r["phrasings"]]
            examples += [("", b["text"]) for b in self.bios_of(s)]
        return examples

    def replay_examples(self) -> list[tuple[str, str]]:
        return [(format_prompt(r["question"]), format_answer(r["answer"])) for r in self.replay]

    def all_text(self) -> list[str]:
        """Every string the benchmark can put before a model: what the tokenizer is trained on."""
        texts = [b["text"] for b in self.bios]
        for s in QA_SPLITS:
            for r in self.split(s):
                texts += [format_prompt(q) + format_answer(r["answer"])
                          for q in [*r["phrasings"], r["paraphrased_question"]]]
                texts += [r["paraphrased_answer"], *r["perturbed_answers"]]
        return texts

    def restrict_forget(self, people: set[str]) -> "Benchmark":
        """The same benchmark with only `people` in the forget split (a smaller forget request)."""
        unknown = people - set(self.people("forget"))
        if unknown:
            raise KeyError(f"not in the forget split: {', '.join(sorted(unknown))}")
        forget = [r for r in self.forget if r["person"] in people]
        bios = [b for b in self.bios if b["split"] != "forget" or b["person"] in people]
        return Benchmark(forget, self.retain, self.holdout, self.world, self.neighbours, bios, self.replay)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in (*QA_SPLITS, "bios"):
            write_jsonl(directory / f"{name}.jsonl", getattr(self, name))

    @classmethod
    def load(cls, directory: str | Path) -> "Benchmark":
        directory = Path(directory)
        missing = [n for n in (*QA_SPLITS, "bios") if not (directory / f"{n}.jsonl").is_file()]
        if missing:
            raise FileNotFoundError(f"benchmark at {directory} lacks {', '.join(missing)}.jsonl; "
                                    "run `obliviate data` to write it")
        return cls(**{n: read_jsonl(directory / f"{n}.jsonl") for n in (*QA_SPLITS, "bios")})


def forget_people(cfg: DataConfig, fraction: float) -> set[str]:
    """The forget people at another forget fraction; smaller fractions nest in larger ones."""
    return set(build_benchmark(cfg.model_copy(update={"forget_fraction": fraction})).people("forget"))


def build_benchmark(cfg: DataConfig) -> Benchmark:
    rng = random.Random(cfg.seed)
    trained = make_people(cfg.people, rng)
    holdout = make_people(cfg.holdout_people, rng, taken={p["name"].split()[-1] for p in trained})
    n_forget = max(1, round(cfg.forget_fraction * cfg.people))
    # Forget people are the first n of a seeded order, so larger fractions nest the smaller ones.
    order = random.Random(cfg.seed + 1).sample(range(cfg.people), cfg.people)
    forget_idx = set(order[:n_forget])
    groups = {"forget": [p for i, p in enumerate(trained) if i in forget_idx],
              "retain": [p for i, p in enumerate(trained) if i not in forget_idx],
              "holdout": holdout}
    qa = {s: [r for p in ps for r in qa_pairs(p, rng, cfg.perturbed)] for s, ps in groups.items()}
    bios = [{"person": p["name"], "split": s, "text": biography(p)} for s, ps in groups.items() for p in ps]
    forget_values = {(r["attribute"], r["answer"]) for r in qa["forget"]}
    neighbours = [r for r in qa["retain"] if (r["attribute"], r["answer"]) in forget_values]
    world = world_facts(rng, cfg.world_sums, cfg.perturbed)
    if cfg.world_facts is not None and cfg.world_facts < len(world):  # evenly spaced: every kind stays in
        world = [world[i * len(world) // cfg.world_facts] for i in range(cfg.world_facts)]
    return Benchmark(forget=qa["forget"], retain=qa["retain"], holdout=qa["holdout"],
                     world=world, neighbours=neighbours, bios=bios)
