"""The worker's jobs on a SISA / S3T store: exact deletion of a batch, and S3T's background retraining.

    exact_job(worker, current, ids, job_dir)   # copy the store, delete through its lineage, publish v<id>
    start_retrain(worker, background=True)     # when idle: drain the current S3T store's queue on a copy

A deletion job has no verification loop: the lineage proof (`exact.delete_requests`) is the
evidence, recorded in each request's `removed` event, in the version's details and in
`v<id>/deletion.json`. S3T deactivates blocks at once and queues their retraining; the job appends a
`retrain_queued` event (the follow-up job's record), and the store's own queue (lineage.json) is what
the worker picks up when it is idle. A retrained store is registered as a further version only if
its source is still the current version; otherwise a newer deletion came first, and its queue (which
includes this one's) is retrained next. SISA retrains the affected shards inside the deletion.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from obliviate.ledger.audit import append_event
from obliviate.ledger.claim import ModelLock, lock_claimed
from obliviate.ledger.exact import delete_requests, is_exact_store, pending_retrain, retrain
from obliviate.ledger.lifecycle import Status, transition
from obliviate.ledger.models import ModelVersion
from obliviate.ledger.publish import abandon, discard, new_job_dir, publish
from obliviate.ledger.store import request_data
from obliviate.ledger.versions import current_model_version, resolve_model_path

if TYPE_CHECKING:
    from obliviate.ledger.worker import Worker


def exact_job(w: "Worker", current: ModelVersion, ids: list[int], job_dir: Path) -> None:
    staged, path = job_dir / "store", None
    try:
        with w.ledger.begin() as s:
            data = {r.id: request_data(r) for r in lock_claimed(s, w.me, ids)}
        shutil.copytree(resolve_model_path(current.path), staged)
        result = delete_requests(staged, data)
        if result.deleted:
            (staged / "deletion.json").write_text(json.dumps(
                {"from_version": current.id, "store": result.kind, "report": result.report,
                 "requests": {str(k): v for k, v in result.proofs.items()}}, indent=1) + "\n")
        with w.ledger.begin() as s:
            rows = lock_claimed(s, w.me, ids)
            removed = [r for r in rows if result.outcome.get(r.id) == "removed"]
            version = None
            if result.deleted:
                version = publish(s, staged, w.versions_dir, actor=w.me, request_ids=[r.id for r in removed],
                                  evidence_name="deletion.json", parent_id=current.id,
                                  details={"store": result.kind, "exact": True, "from_version": current.id,
                                           "items_deleted": result.deleted, "retrain_queued": result.queue,
                                           "lineage_sha256": result.lineage_sha256})
                path = version.path
            for r in rows:
                proof = result.proofs[r.id]
                if r in removed:
                    figures = {k: v for k, v in proof.items() if isinstance(v, int)}
                    transition(s, r, Status.removed, actor=w.me, model_version_id=version.id if version else current.id,
                               evidence={"verdict": "removed", "method": result.kind, "kind": r.kind,
                                         "lineage": figures},
                               details={"lineage": proof, "evidence_path": version.evidence_path if version else None})
                else:
                    transition(s, r, Status.verifying, actor=w.me, details={"lineage": proof})
                    transition(s, r, Status.suppressed_only, actor=w.me, error=result.reasons[r.id],
                               details={"lineage": proof, "model_version_id": current.id})
            if version is not None and result.queue:
                append_event(s, "retrain_queued", actor=w.me, details={
                    "model_version_id": version.id, "store": result.kind, "queue": result.queue})
    except BaseException as err:
        return abandon(path, err, lambda e: w.fail(ids, e))
    w.summary["removed"] += [r.id for r in removed]
    w.summary["suppressed_only"] += [r.id for r in rows if r not in removed]
    if version is not None:
        w.summary["versions"].append(version.id)
    w.log(f"requests {[r.id for r in removed]}: removed by exact deletion ({result.deleted} items)"
          + (f"; model version {version.id}" if version else "")
          + (f"; retraining of {len(result.queue)} block stacks queued" if result.queue else ""))
    for r in rows:
        if r not in removed:
            w.log(f"request {r.id}: suppressed_only ({result.reasons[r.id]})")


def start_retrain(w: "Worker", background: bool) -> None:
    """Retrain the current S3T store's deactivated blocks, if it has any (in a thread when `background`)."""
    if w.retrainer is not None and w.retrainer.is_alive():
        return
    with w.ledger.begin() as s:
        current = current_model_version(s)
    if current is None or current.id in w.retrain_skip:
        return
    path = resolve_model_path(current.path)
    if not is_exact_store(path) or not pending_retrain(path):
        return
    if not background:
        return retrain_job(w, current.id, path)
    w.retrainer = threading.Thread(target=retrain_job, args=(w, current.id, path), daemon=True,
                                   name="obliviate-retrain")
    w.retrainer.start()


def retrain_job(w: "Worker", base_id: int, path: Path) -> None:
    from obliviate.ledger.worker import error_line

    alone = ModelLock(w.ledger, "retrain")
    if not alone.try_acquire():  # another worker is retraining
        return
    job_dir, published = new_job_dir(w.versions_dir, w.me, role="retrain"), None
    try:
        w.log(f"retraining the deactivated blocks of model version {base_id}")
        report = retrain(path, job_dir / "store")
        lock = ModelLock(w.ledger)
        if not lock.acquire(w.stop):
            return
        try:
            with w.ledger.begin() as s:
                current = current_model_version(s)
                if current is None or current.id != base_id:  # a deletion came first: its queue is retrained next
                    w.log(f"retraining of version {base_id} dropped: a newer version is current")
                    return
                version = publish(s, job_dir / "store", w.versions_dir, actor=w.me, request_ids=[],
                                  evidence_name=None, parent_id=base_id,
                                  details={"exact": True, "retrained_from": base_id, "drain": report})
                published = version.path
                append_event(s, "retrained", actor=w.me, details={
                    "model_version_id": version.id, "from_version": base_id, **report})
        finally:
            lock.release()
        w.summary["retrained"].append(version.id)
        w.log(f"retrained: model version {version.id} ({report.get('steps')} steps)")
    except BaseException as err:
        if published is not None:
            discard(published)
        if not isinstance(err, Exception):
            raise
        w.retrain_skip.add(base_id)  # it stays queued in the store; this worker does not try it again
        w.log(f"retraining of version {base_id} failed: {error_line(err)}")
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)
        alone.release()
