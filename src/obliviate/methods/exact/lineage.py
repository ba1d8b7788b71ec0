"""The lineage record of an exact-unlearning store: which shard and slice every deletable training
item went into, which checkpoints its data shaped, and a SHA-256 checksum of every checkpoint.

Deletion consults it and nothing else: an item's shard and slice say what must be retrained (SISA)
or deactivated (S3T); the checksums make sure retraining starts from the state that was saved, not
from a file that changed or vanished since. The forget-request ledger reads it too.

    record = Lineage.load(store / "lineage.json")
    record.items["a1b2c3d4e5f6"]        # {"person", "shard", "slice", "prompt", "completion", "deleted"}
    record.verify(store, "shard-00/slice-01.safetensors")   # ObliviateError when missing or corrupted

A deleted item keeps its id, shard, slice and deletion time, but its text is erased from the record:
the store must not keep what it was asked to forget.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from obliviate.errors import ObliviateError
from obliviate.io import atomic_write_text


def item_id(prompt: str, completion: str) -> str:
    """A stable id for a training item: the same text always gets the same id."""
    return hashlib.sha256(f"{prompt}\x00{completion}".encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Lineage:
    """Everything deletion needs to know; saved as JSON beside the checkpoints."""
    kind: str                      # "sisa" or "s3t"
    config: dict                   # the method's settings
    seed: int
    items: dict[str, dict]         # id -> {person, shard, slice, prompt, completion, deleted}
    checkpoints: dict[str, str] = field(default_factory=dict)   # path relative to the store -> sha256
    state: dict = field(default_factory=dict)                   # method-specific (S3T: active blocks, queue)
    history: list[dict] = field(default_factory=list)           # one entry per deletion request

    def live(self, shard: int, slices: range | list[int]) -> list[str]:
        """Ids of the not-deleted items of `shard` in `slices`, in training order (slice, then id)."""
        wanted = set(slices)
        keep = [(r["slice"], i) for i, r in self.items.items()
                if r["shard"] == shard and r["slice"] in wanted and not r["deleted"]]
        return [i for _, i in sorted(keep)]

    def examples(self, ids: list[str]) -> list[tuple[str, str]]:
        return [(self.items[i]["prompt"], self.items[i]["completion"]) for i in ids]

    def check_deletable(self, ids: list[str]) -> None:
        """Raise, changing nothing, unless every id is a trained item that is not yet deleted."""
        if not ids:
            raise ObliviateError("the deletion request is empty; pass the ids of trained items "
                                 "(see lineage.json, or items_of_people)")
        unknown = [i for i in ids if i not in self.items]
        if unknown:
            raise ObliviateError(f"{len(unknown)} of {len(ids)} items were never trained on by this "
                                 f"{self.kind} model (e.g. {unknown[0]!r}); nothing was deleted. Public (world) "
                                 "data is not deletable; look ids up with item_id(prompt, completion)")
        gone = [i for i in ids if self.items[i]["deleted"]]
        if gone:
            raise ObliviateError(f"{len(gone)} of {len(ids)} items are already deleted (e.g. {gone[0]!r}, at "
                                 f"{self.items[gone[0]]['deleted']}); nothing was deleted. Drop them from the request")

    def mark_deleted(self, ids: list[str]) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for i in ids:
            r = self.items[i]
            r.update(deleted=stamp, prompt=None, completion=None)  # the text itself must not stay

    def record(self, store: Path, relpath: str) -> None:
        """Checksum a checkpoint just written under `store`."""
        self.checkpoints[relpath] = sha256_file(store / relpath)

    def verify(self, store: Path, relpath: str) -> Path:
        """The checkpoint's path, after checking it exists and matches its recorded checksum."""
        path = store / relpath
        want = self.checkpoints.get(relpath)
        if want is None:
            raise ObliviateError(f"checkpoint {relpath} is not in {store}/lineage.json; this store's lineage "
                                 "does not cover it, so it cannot be a retraining start point")
        if not path.is_file():
            raise ObliviateError(f"checkpoint {path} is missing; deletion needs it as the state to retrain from. "
                                 "Restore the store from a copy, or train the model again from its data")
        got = sha256_file(path)
        if got != want:
            raise ObliviateError(f"checkpoint {path} is corrupted: its sha256 {got[:12]}… differs from the recorded "
                                 f"{want[:12]}…; refusing to retrain from a wrong state. Restore the store from a "
                                 "copy, or train the model again from its data")
        return path

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.__dict__, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Lineage":
        if not path.is_file():
            raise ObliviateError(f"no lineage record at {path}; an exact-unlearning store holds lineage.json")
        return cls(**json.loads(path.read_text()))
