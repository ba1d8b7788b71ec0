"""What SISA and S3T share: their settings, the deletable items of a benchmark and how they are
sharded, the public base model, deterministic slice training, and the on-disk store.

A store is one directory: `lineage.json` (see `lineage.py`), `base/` (the model trained once on the
public `world` facts, with the tokenizer) and the method's checkpoints. It is the saved model too:
`load_exact(dir)` serves it again and can delete more items from it.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from obliviate.data import Benchmark, format_answer, format_prompt
from obliviate.errors import ObliviateError
from obliviate.methods.exact.ensemble import EnsembleLanguageModel
from obliviate.methods.exact.lineage import Lineage, item_id
from obliviate.models.hf import IGNORE, encode_rows, pad_rows, token_log_probs
from obliviate.models.train import length_batches, optimize

STORE_KINDS: dict[str, type["ExactStore"]] = {}  # lineage kind -> store class, for `load_exact`
DELETABLE_SPLITS = ("forget", "retain")          # the people; `world` is public and never deleted


class ExactConfig(BaseModel):
    """Settings SISA and S3T share."""
    model_config = ConfigDict(extra="forbid")
    shards: int = Field(10, ge=1, description="disjoint shards of the people; one constituent model each")
    slices: int = Field(2, ge=1, description="slices per shard, trained one after another with a checkpoint each "
                        "(slice i retrains on slices 0..i and the last also replays the world facts, so a deletion "
                        "retrains the last slice whatever R is: on tiny 2 slices cost 120-150 steps per deletion, "
                        "3 slices 126-186)")
    epochs: int = Field(6, ge=1, description="epochs of each slice's training (over slices 1..i for slice i)")
    base_epochs: int = Field(10, ge=1, description="epochs of the shared base model on the public world facts")
    lr: float = Field(3e-3, gt=0, description="peak learning rate of slice training")
    batch_size: int = Field(32, ge=1, description="examples per optimizer step")
    prompt_weight: float = Field(1.0, ge=0, description="weight of the prompt tokens' loss beside the answer's: "
                                 "a constituent that learned its questions recognises its people, which is what the "
                                 "ensemble's posterior weights route by; 0 trains on completions only, like the target")
    base_lr: float = Field(3e-3, gt=0, description="peak learning rate of the base's training (the target's)")
    base_prompt_weight: float = Field(1.0, ge=0, description="`prompt_weight` of the base's training on the world "
                                      "facts")
    replay: Literal["none", "last", "every"] = Field(
        "last", description="mix the public world facts into slice training: in the last slice only (SISA serves "
        "only last slices), in every slice (S3T serves any prefix), or never; fine-tuning on people alone erases the "
        "base's world facts")


def sub_seed(seed: int, *parts: object) -> int:
    """A seed for one piece of training (a shard's slice, a block): fixed by position, not by history."""
    return int.from_bytes(hashlib.sha256(repr((seed, *parts)).encode()).digest()[:4], "big") >> 1


def deletable_items(bench: Benchmark, splits: tuple[str, ...] = DELETABLE_SPLITS) -> list[dict]:
    """The training items of the people, exactly `bench.training_examples(splits)`, each with its person."""
    items = []
    for s in splits:
        for r in bench.split(s):
            items += [{"person": r["person"], "prompt": format_prompt(p), "completion": format_answer(r["answer"])}
                      for p in r["phrasings"]]
        items += [{"person": b["person"], "prompt": "", "completion": b["text"]} for b in bench.bios_of(s)]
    return items


def assign(items: list[dict], shards: int, slices: int, seed: int) -> dict[str, dict]:
    """Lineage entries: people shuffled by `seed`, dealt round-robin to shards, then to slices, so a
    person's items share one shard and one slice (deleting a person touches one of each)."""
    people = sorted({it["person"] for it in items})
    if len(people) < shards:
        raise ObliviateError(f"{len(people)} people cannot fill {shards} shards; use at most {len(people)} shards "
                             f"(--set method_args.<method>.shards={len(people)})")
    random.Random(seed).shuffle(people)
    where = {p: (k % shards, (k // shards) % slices) for k, p in enumerate(people)}
    out = {}
    for it in items:
        shard, slc = where[it["person"]]
        out.setdefault(item_id(it["prompt"], it["completion"]),
                       {"person": it["person"], "shard": shard, "slice": slc, "prompt": it["prompt"],
                        "completion": it["completion"], "deleted": None})
    return out


def train_on(model, tokenizer, examples: list[tuple[str, str]], cfg: ExactConfig, epochs: int, seed: int,
             desc: str, lr: float | None = None) -> int:
    """Train `model` in place with a fresh optimizer; returns the optimizer steps taken.

    A fresh optimizer and a seed fixed by position make a slice's training depend only on the
    weights it starts from and its data: the property exact retraining from a checkpoint rests on.
    The loss is the target's (`answer_nll` on completions) plus `prompt_weight` times the mean NLL
    of the prompt tokens (see `ExactConfig.prompt_weight`).
    """
    if not examples:
        return 0
    rng = random.Random(seed)
    torch.manual_seed(seed)
    rows = encode_rows(tokenizer, [p for p, _ in examples], [c for _, c in examples])
    # Every token after the bos is labelled; which of them are the answer is kept beside the ids.
    rows = [(ids, [IGNORE, *ids[1:]]) for ids, _ in rows], [labels for _, labels in rows]
    lengths = [len(ids) for ids, _ in rows[0]]
    steps = -(-len(examples) // cfg.batch_size) * epochs

    def batches():
        for _ in range(epochs):
            for b in length_batches(lengths, cfg.batch_size, rng):
                ids, mask, labels = pad_rows([rows[0][i] for i in b], tokenizer.pad_token_id)
                _, _, answer = pad_rows([(rows[0][i][0], rows[1][i]) for i in b], tokenizer.pad_token_id)
                yield ids, mask, labels, answer

    def loss(m, batch):
        ids, mask, labels, answer = (t.to(m.device) for t in batch)
        lp, valid = token_log_probs(m, ids, mask, labels)
        is_answer = (answer[:, 1:] != IGNORE).float()
        n = is_answer.sum(1)
        weight = (n / 10).clamp(min=1)  # answer_nll's weighting: a long biography counts n / 10 times
        answer_loss = (weight * -(lp * is_answer).sum(1) / n.clamp(min=1)).sum() / weight.sum()
        is_prompt = valid * (1 - is_answer)
        return answer_loss + cfg.prompt_weight * -(lp * is_prompt).sum() / is_prompt.sum().clamp(min=1)

    optimize(model, loss, batches(), steps, lr or cfg.lr, 0.05, 0.0, 1.0, desc=desc)
    return steps


class ExactStore:
    """A trained exact-unlearning model on disk; subclasses define training, deletion and serving."""
    kind = "exact"
    config_class: type[ExactConfig] = ExactConfig

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        STORE_KINDS[cls.kind] = cls

    def __init__(self, path: Path, record: Lineage):
        self.path, self.record = Path(path), record
        self.config = self.config_class(**record.config)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path / "base")
        self.steps = 0  # optimizer steps of the last train / delete call

    # --- creation ---------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path | None, tokenizer: PreTrainedTokenizerBase, arch, bench: Benchmark,
               config: ExactConfig, seed: int) -> "ExactStore":
        """Train the base on `world` and every shard on its people; `path` None: a temporary store."""
        temporary = path is None
        path = Path(tempfile.mkdtemp(prefix=f"obliviate-{cls.kind}-")) if temporary else Path(path)
        path.mkdir(parents=True, exist_ok=True)
        items = assign(deletable_items(bench), config.shards, config.slices, sub_seed(seed, "assign"))
        public = bench.training_examples(("world",))
        record = Lineage(cls.kind, config.model_dump(), seed, items, state={"public": [list(e) for e in public]})
        torch.manual_seed(sub_seed(seed, "base"))
        base = AutoModelForCausalLM.from_config(arch)
        base_cfg = config.model_copy(update={"prompt_weight": config.base_prompt_weight, "lr": config.base_lr})
        steps = train_on(base, tokenizer, public, base_cfg, config.base_epochs, sub_seed(seed, "base"),
                         f"{cls.kind}: base on world")
        base.save_pretrained(path / "base")
        tokenizer.save_pretrained(path / "base")
        record.record(path, "base/model.safetensors")
        store = cls(path, record)
        if temporary:
            weakref.finalize(store, shutil.rmtree, path, True)
        store.train_all()
        store.steps += steps
        record.save(path / "lineage.json")
        return store

    def base_model(self):
        """A fresh copy of the public base, after checking its checksum."""
        self.record.verify(self.path, "base/model.safetensors")
        return AutoModelForCausalLM.from_pretrained(self.path / "base").eval()

    def copy(self, path: Path | None = None) -> "ExactStore":
        """The same store in another directory (a temporary one when `path` is None)."""
        temporary = path is None
        dest = Path(tempfile.mkdtemp(prefix=f"obliviate-{self.kind}-")) if temporary else Path(path)
        shutil.copytree(self.path, dest, dirs_exist_ok=True)
        store = type(self)(dest, Lineage.load(dest / "lineage.json"))
        if temporary:
            weakref.finalize(store, shutil.rmtree, dest, True)
        return store

    def save(self, path) -> None:
        shutil.copytree(self.path, Path(path), dirs_exist_ok=True)

    def examples(self, ids: list[str], last: bool) -> list[tuple[str, str]]:
        """Training data of one slice (or block): its live items, plus the public facts per `replay`."""
        replay = self.config.replay == "every" or (self.config.replay == "last" and last)
        return self.record.examples(ids) + ([tuple(e) for e in self.record.state["public"]] if replay else [])

    # --- deletion ---------------------------------------------------------------------------
    def items_of_people(self, people: list[str] | set[str]) -> list[str]:
        """Ids of the live items of `people` (a forget request by person)."""
        people = set(people)
        found = {r["person"] for r in self.record.items.values()}
        unknown = sorted(people - found)
        if unknown:
            raise ObliviateError(f"{len(unknown)} people were never trained on by this {self.kind} model "
                                 f"(e.g. {unknown[0]!r}); nothing was deleted")
        return [i for i, r in self.record.items.items() if r["person"] in people and not r["deleted"]]

    def delete(self, ids: list[str]) -> dict:
        """Remove items exactly; returns what it cost. Bad ids or a bad checkpoint change nothing."""
        ids = list(dict.fromkeys(ids))
        self.record.check_deletable(ids)
        report = self._delete(ids)
        self.record.history.append({"items": len(ids), **report})
        self.record.save(self.path / "lineage.json")
        return report

    # --- what subclasses define -------------------------------------------------------------
    def train_all(self) -> None:
        raise NotImplementedError

    def _delete(self, ids: list[str]) -> dict:
        raise NotImplementedError

    def constituents(self) -> list:
        raise NotImplementedError

    def language_model(self, name: str | None = None) -> EnsembleLanguageModel:
        lm = EnsembleLanguageModel(self.constituents(), self.tokenizer, name or self.kind, saver=self.save)
        lm.store = self  # keeps a temporary store alive as long as its model, and lets it delete more
        return lm


def is_exact_dir(path) -> bool:
    return (Path(path) / "lineage.json").is_file() and (Path(path) / "base").is_dir()


def load_exact(path, name: str | None = None) -> EnsembleLanguageModel:
    """The ensemble saved in an exact-unlearning store (SISA or S3T); `.store` deletes more from it."""
    path = Path(path)
    if not is_exact_dir(path):
        raise ObliviateError(f"no exact-unlearning store at {path} (lineage.json or base/ missing)")
    record = Lineage.load(path / "lineage.json")
    if record.kind not in STORE_KINDS:
        raise ObliviateError(f"{path}/lineage.json has unknown kind {record.kind!r}; known: "
                             f"{', '.join(sorted(STORE_KINDS))}")
    return STORE_KINDS[record.kind](path, record).language_model(name)
