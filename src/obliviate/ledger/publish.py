"""Model versions on disk: a job's scratch directory, fsync, the atomic rename to `v<id>`, and the
clean-up after a crash. Nothing here is ever half-written under its final name.

    versions_dir/
      v<id>/             a registered version: complete and fsynced before its rename, checksummed in model_versions
      evidence/<job>/    evidence of a job that made no version (its requests ended suppressed_only)
      .job-<random>/     a running job's scratch space; `owner` names its worker

    with ledger.begin() as session:                   # the rename happens inside the transaction:
        version = publish(session, staged, versions_dir, actor=me, request_ids=[3, 4])
    # a crash before the commit leaves v<id> without its row: `clean_versions_dir` removes it later

Only the holder of the model lock (`claim.ModelLock`) publishes or cleans, so a directory without
its row is always a leftover, never a version about to be committed.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy.orm import Session

from obliviate.ledger.claim import claimer_alive
from obliviate.ledger.models import ModelVersion
from obliviate.ledger.versions import directory_sha256, list_model_versions, register_model_version

_VERSION_DIR = re.compile(r"^v\d+$")
JOB_PREFIX = ".job-"


def new_job_dir(versions_dir: Path, worker_id: str, role: str = "job") -> Path:
    """A fresh scratch directory under `versions_dir`, owned by `worker_id` (same file system: renames are atomic)."""
    versions_dir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=versions_dir, prefix=JOB_PREFIX))
    (path / "owner").write_text(f"{worker_id}\n{role}\n")
    return path


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under `root` (and `root`) to disk."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            _fsync(Path(dirpath) / name)
        _fsync(Path(dirpath), directory=True)


def version_path(versions_dir: Path, version_id: int) -> Path:
    return versions_dir.resolve() / f"v{version_id}"


def publish(session: Session, staged: Path, versions_dir: Path, *, actor: str, request_ids: list[int],
            evidence_name: str | None, details: dict, parent_id: int | None) -> ModelVersion:
    """Register `staged` (complete, fsynced here) as the next version and rename it to `v<id>`, in the
    caller's transaction. If that transaction then fails, call `discard` with the version's path."""
    fsync_tree(staged)
    sha = directory_sha256(staged)
    version = register_model_version(
        session, path=lambda i: version_path(versions_dir, i), weights_sha256=sha, actor=actor,
        parent_id=parent_id, request_ids=request_ids, details=details,
        evidence_path=(lambda i: version_path(versions_dir, i) / evidence_name) if evidence_name else None)
    target = Path(version.path)
    if target.exists():  # a leftover of a crashed job whose id this ledger handed out again
        shutil.rmtree(target)
    os.replace(staged, target)
    _fsync(versions_dir, directory=True)
    return version


def discard(path: str | Path) -> None:
    """Remove a renamed version directory whose transaction did not commit."""
    shutil.rmtree(path, ignore_errors=True)


def abandon(path: str | Path | None, err: BaseException, fail) -> None:
    """After a publishing transaction raised: remove the version directory it renamed into place
    (its row was rolled back), then hand an error to `fail(err)`; an interrupt propagates."""
    if path is not None:
        discard(path)
    if not isinstance(err, Exception):
        raise err
    fail(err)


def keep_evidence(versions_dir: Path, job_dir: Path, out: Path) -> Path | None:
    """Move evidence.json / .html of a job that made no version to versions_dir/evidence/<job>/."""
    files = [out / n for n in ("evidence.json", "evidence.html") if (out / n).is_file()]
    if not files:
        return None
    staged = job_dir / "evidence"
    staged.mkdir(exist_ok=True)
    for f in files:
        os.replace(f, staged / f.name)
    fsync_tree(staged)
    dest = versions_dir.resolve() / "evidence" / f"job-{time.strftime('%Y%m%dT%H%M%S')}-{job_dir.name[len(JOB_PREFIX):]}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, dest)
    _fsync(dest.parent, directory=True)
    return dest / "evidence.json"


def clean_versions_dir(session: Session, versions_dir: Path, lease_s: float) -> list[str]:
    """Remove what crashed jobs left: scratch directories of workers that are gone, and `v<id>`
    directories without a registered version. Call it holding the model lock. Returns what went."""
    if not versions_dir.is_dir():
        return []
    registered = {Path(v.path).resolve() for v in list_model_versions(session) if v.path}
    removed = []
    for p in sorted(versions_dir.iterdir()):
        if p.name.startswith(JOB_PREFIX) and p.is_dir():
            owner_file = p / "owner"
            owner = owner_file.read_text().split("\n")[0] if owner_file.is_file() else None
            alive = claimer_alive(owner)
            old = time.time() - p.stat().st_mtime > lease_s
            if alive is False or (alive is None and old):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
        elif _VERSION_DIR.match(p.name) and p.is_dir() and p.resolve() not in registered:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed
