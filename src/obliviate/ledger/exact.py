"""Exact deletion for the worker: when the current model version is a SISA or S3T store, a request is
honoured through the store's lineage, with no unlearning method and no verification loop.

    from obliviate.ledger.exact import is_exact_store, delete_requests, retrain
    if is_exact_store(path):
        shutil.copytree(path, staged)
        result = delete_requests(staged, {3: request_data(r3), 4: request_data(r4)})
        result.proofs[3]       # {"store", "items", "deleted_now", "already_deleted", "public", "positions", ...}
        result.queue           # S3T: (shard, sequence) stacks waiting to be retrained in the background
    retrain(path, staged2)     # S3T: drain the queue on a copy (the worker does it when idle)

Lineage lookup: each forget record is the training items it became (`methods.exact.store.
deletable_items`: one per phrasing of a QA record, one per passage), found by `item_id`. A request
whose items are all live or already deleted is `removed`: the store deletes them (S3T deactivates
the blocks that saw them, at once; SISA retrains their shards from the last clean checkpoint) and
the lineage record is the proof. A request with an item in the public base data (never deletable),
or with none of its items in the lineage at all (the store may have learnt it from other texts),
ends `suppressed_only` with the reason: exact deletion can only delete what its lineage names.
The proofs hold counts, positions and checksums, never text (the store's lineage.json keeps the ids).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from obliviate.requests import RequestData


def is_exact_store(path: str | Path) -> bool:
    """A SISA / S3T store directory (lineage.json and base/), as `methods.exact.is_exact_dir` says."""
    path = Path(path)
    return (path / "lineage.json").is_file() and (path / "base").is_dir()


def record_items(data: "RequestData") -> list[str]:
    """Item ids of the training items a request's forget records became in a store."""
    from obliviate.data import format_answer, format_prompt
    from obliviate.methods.exact.lineage import item_id

    ids = [item_id(format_prompt(p), format_answer(r["answer"])) for r in data.forget
           for p in (r.get("phrasings") or [r["question"]])]
    ids += [item_id("", p["text"]) for p in data.forget_passages]
    return list(dict.fromkeys(ids))


@dataclass
class Deletion:
    """What deleting a batch from a store did: a proof and an outcome per request, the store's report."""

    kind: str
    proofs: dict[int, dict] = field(default_factory=dict)
    outcome: dict[int, str] = field(default_factory=dict)  # request id -> "removed" | "suppressed_only"
    reasons: dict[int, str] = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    deleted: int = 0
    queue: list = field(default_factory=list)
    lineage_sha256: str = ""


def delete_requests(store_path: Path, requests: dict[int, "RequestData"]) -> Deletion:
    """Delete every request's items from the store at `store_path` (a copy: it is changed in place)."""
    from obliviate.methods.exact.lineage import Lineage, item_id, sha256_file
    from obliviate.methods.exact.store import STORE_KINDS

    record = Lineage.load(store_path / "lineage.json")
    public = {item_id(p, c) for p, c in record.state.get("public", [])}
    out, doomed = Deletion(record.kind), []
    for rid, data in requests.items():
        ids = record_items(data)
        live = [i for i in ids if i in record.items and not record.items[i]["deleted"]]
        gone = [i for i in ids if i in record.items and record.items[i]["deleted"]]
        in_public = [i for i in ids if i in public and i not in record.items]
        out.proofs[rid] = {
            "store": record.kind, "records": len(data.forget) + len(data.forget_passages), "items": len(ids),
            "deleted_now": len(live), "already_deleted": len(gone), "public": len(in_public),
            "never_trained": len(ids) - len(live) - len(gone) - len(in_public),
            "positions": sorted({(record.items[i]["shard"], record.items[i]["slice"]) for i in live + gone})}
        if in_public:
            out.outcome[rid] = "suppressed_only"
            out.reasons[rid] = (f"exact deletion: {len(in_public)} of the {len(ids)} training items of its records "
                                f"are in the {record.kind} store's public base data, which no deletion removes")
        elif not live and not gone:
            out.outcome[rid] = "suppressed_only"
            out.reasons[rid] = (f"exact deletion: none of the {len(ids)} training items of its records is in the "
                                f"{record.kind} store's lineage, so nothing can be deleted (the store may have "
                                "learnt them from other texts)")
        else:
            out.outcome[rid] = "removed"
            doomed += live
    doomed = list(dict.fromkeys(doomed))
    if doomed:
        store = STORE_KINDS[record.kind](store_path, record)
        out.report = store.delete(doomed)
        out.deleted = len(doomed)
    record = Lineage.load(store_path / "lineage.json")
    out.queue = [list(q) for q in record.state.get("queue", [])]
    out.lineage_sha256 = sha256_file(store_path / "lineage.json")
    for proof in out.proofs.values():
        proof["lineage_sha256"] = out.lineage_sha256
        proof["positions"] = [list(p) for p in proof["positions"]]
    return out


def pending_retrain(path: str | Path) -> list:
    """The (shard, sequence) stacks an S3T store still has to retrain; [] for SISA (it retrains on delete)."""
    import json

    state = json.loads((Path(path) / "lineage.json").read_text()).get("state", {})
    return list(state.get("queue", []))


def retrain(source: Path, staged: Path) -> dict:
    """Copy the store at `source` to `staged` and run its retraining queue there (S3T's drain)."""
    from obliviate.methods.exact.lineage import Lineage, sha256_file
    from obliviate.methods.exact.store import STORE_KINDS

    shutil.copytree(source, staged)
    record = Lineage.load(staged / "lineage.json")
    store = STORE_KINDS[record.kind](staged, record)
    report = store.drain()
    return {**report, "lineage_sha256": sha256_file(staged / "lineage.json")}
