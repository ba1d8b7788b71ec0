"""Model versions: every model the ledger serves, from the base model to each one the worker wrote.

    from obliviate.ledger.versions import register_model_version, current_model_version, directory_sha256
    base = register_model_version(session, path="models/base", weights_sha256=directory_sha256("models/base"),
                                  actor="ops", parent_id=None)
    v2 = register_model_version(session, path="models/v2", weights_sha256=directory_sha256("models/v2"),
                                actor="worker-1", request_ids=[3, 4], evidence_path="models/v2/evidence.json")
    current_model_version(session)   # v2: the newest registered version is the one served

Registering appends a `model_version` event, so the audit chain records each version's checksum.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Callable, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from obliviate.errors import ObliviateError
from obliviate.ledger.audit import append_event
from obliviate.ledger.models import ModelVersion, Request, utcnow

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def directory_sha256(path: str | Path) -> str:
    """sha256 over a model directory (or file): each file's relative path and bytes, in sorted order."""
    root = Path(path)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file())
    else:
        raise ObliviateError(f"model path {root} not found; give the model directory or file to checksum")
    h = hashlib.sha256()
    for f in files:
        h.update((f.relative_to(root).as_posix() if f != root else f.name).encode("utf-8") + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def resolve_model_path(path: str | Path) -> Path:
    """The file or directory a version's path names: the path itself, or a packaged model's file
    (a version of `smollm2-135m-instruct` keeps that name as its path, as `obliviate forget` takes it)."""
    p = Path(path).expanduser()
    if p.exists():
        return p
    from obliviate.models.load import SMOLLM2, smollm2_path  # imports torch: only for a packaged name

    if str(path).lower() == SMOLLM2:
        return smollm2_path()
    raise ObliviateError(f"model path {path} not found; give a Hugging Face model directory, a .gguf file, an "
                         f"exact-unlearning store or the packaged name {SMOLLM2!r}")


def current_model_version(session: Session) -> ModelVersion | None:
    """The newest registered version (the one to serve and to unlearn from next), or None."""
    return session.scalar(select(ModelVersion).order_by(ModelVersion.id.desc()).limit(1))


def list_model_versions(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


def register_model_version(session: Session, *, path: str | Path | Callable[[int], str | Path], weights_sha256: str,
                           actor: str,
                           parent_id: int | None | Literal["current"] = "current",
                           request_ids: list[int] | tuple[int, ...] = (),
                           evidence_path: str | Path | Callable[[int], str | Path] | None = None,
                           details: dict | None = None) -> ModelVersion:
    """Record a new model version (parent: the current version unless given; None for a base model).

    weights_sha256: 64 hex digits (`directory_sha256` of the written directory). request_ids: the
    requests it satisfies (they must exist). details: JSON facts such as method or store kind.
    path may be a function of the new version's id (the worker names a version `v<id>`); it is called
    once the row has its id, before the event that records the path is appended.
    """
    if not _SHA256.match(weights_sha256 or ""):
        raise ObliviateError(f"weights_sha256 {weights_sha256!r} is not a sha256 (64 lower-case hex digits); "
                             "compute it with obliviate.ledger.versions.directory_sha256")
    if parent_id == "current":
        current = current_model_version(session)
        parent_id = current.id if current is not None else None
    elif parent_id is not None and session.get(ModelVersion, parent_id) is None:
        raise ObliviateError(f"parent model version {parent_id} is not in the ledger; `obliviate models list` "
                             "shows the versions")
    ids = [int(i) for i in request_ids]
    known = set(session.scalars(select(Request.id).where(Request.id.in_(ids)))) if ids else set()
    if set(ids) - known:
        raise ObliviateError(f"requests {sorted(set(ids) - known)} are not in the ledger; give existing request ids")
    version = ModelVersion(parent_id=parent_id, path="" if callable(path) else os.fspath(path),
                           weights_sha256=weights_sha256, created_at=utcnow(), request_ids=ids, details=details or {})
    session.add(version)
    session.flush()
    if callable(path):
        version.path = os.fspath(path(version.id))
    if callable(evidence_path):
        evidence_path = evidence_path(version.id)
    version.evidence_path = os.fspath(evidence_path) if evidence_path is not None else None
    append_event(session, "model_version", actor=actor, details={
        "id": version.id, "parent_id": parent_id, "path": version.path, "weights_sha256": weights_sha256,
        "request_ids": ids, "evidence_path": version.evidence_path, **({"details": details} if details else {})})
    return version


def version_dict(version: ModelVersion, current_id: int | None = None) -> dict:
    return {"id": version.id, "parent_id": version.parent_id, "path": version.path,
            "weights_sha256": version.weights_sha256, "created_at": version.created_at.isoformat(timespec="seconds"),
            "request_ids": version.request_ids, "evidence_path": version.evidence_path, "details": version.details,
            "current": version.id == current_id}
