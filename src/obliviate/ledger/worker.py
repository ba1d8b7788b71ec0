"""The worker: claims queued forget requests in batches, unlearns them from the current model version,
and records a new version and each request's final state (issue 18). See docs/ledger.md, "Worker".

    obliviate models add runs/micro/cache/models-…/target --db ledger.db     # the base version, once
    obliviate worker --db ledger.db --once --config micro --method npo_kl    # what is queued now, then exit

    from obliviate.ledger import open_ledger
    from obliviate.ledger.worker import run_worker
    summary = run_worker(open_ledger("ledger.db"), once=True, batch_window_s=0, method="npo_kl",
                         cfg=load_config("micro"), versions_dir=Path("versions"))

One job, start to end (claim and queue logic in `claim.py`, directories in `publish.py`):
1. Reclaim what dead workers left in unlearning / verifying (back to queued, attempts already counted).
2. Once the oldest queued request is `batch_window_s` old (`once`: at once), take the model lock,
   check the current version against its sha256, and claim up to `batch_size` requests of one kind.
3. Weight-space model: merge the batch into one request (`job.py`) and run `forget` on the current
   version into a scratch directory under versions_dir; move the batch to verifying; verdict
   `removed` -> fsync, register and rename the directory to `v<id>`, each request removed (payload
   purged by `transition`); any other verdict -> suppressed_only with the deciding evidence as the
   reason, the evidence kept under versions_dir/evidence/, the current version unchanged; an
   exception -> failed with the error, then back to queued while attempts < max_attempts.
   SISA / S3T store: delete through the store's lineage (`exact_job.py`), removed with the lineage
   proof, a new store version; S3T's retraining is queued (`retrain_queued` event) and run by the
   worker in the background when it is idle, registered as a further version if the store is still
   the current one by then.
4. Release the lock; loop (or, with `once`, stop when nothing is queued).

`stop` (a threading.Event, set by the CLI on SIGTERM / SIGINT) ends the loop between jobs. An
exception that is not an Exception (KeyboardInterrupt) leaves the batch claimed: the next worker
reclaims it, since this process is gone by then.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from obliviate.errors import ObliviateError
from obliviate.ledger.claim import (Heartbeat, ModelLock, claim_batch, lock_claimed, reclaim_stale,
                                    seconds_until_ready, worker_identity)
from obliviate.ledger.db import Ledger
from obliviate.ledger.exact import is_exact_store
from obliviate.ledger.exact_job import exact_job, start_retrain
from obliviate.ledger.lifecycle import Status, transition
from obliviate.ledger.models import ModelVersion
from obliviate.ledger.publish import abandon, clean_versions_dir, keep_evidence, new_job_dir, publish
from obliviate.ledger.versions import current_model_version, directory_sha256, resolve_model_path

if TYPE_CHECKING:
    from obliviate.config import RunConfig

NO_VERSION = ("the ledger {url} has no model version to unlearn from; register the base model first: "
              "obliviate models add PATH --db {url}")


def error_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:500]


class Worker:
    """One worker process's state; `run_worker` is the call to use."""

    def __init__(self, ledger: Ledger, *, method: str, cfg: "RunConfig", versions_dir: Path, worker_id: str,
                 batch_size: int, max_attempts: int | None, lease_s: float, launch: str | None, retrain: bool,
                 stop: threading.Event, log: Callable[[str], None]):
        self.ledger, self.method, self.cfg, self.me = ledger, method, cfg, worker_id
        self.versions_dir = Path(versions_dir).expanduser().absolute()
        self.batch_size, self.max_attempts, self.lease_s = batch_size, max_attempts, lease_s
        self.launch, self.retrain, self.stop, self.log = launch, retrain, stop, log
        self.summary: dict = {"worker_id": worker_id, "jobs": 0, "removed": [], "suppressed_only": [], "failed": [],
                              "retried": [], "reclaimed": [], "versions": [], "retrained": []}
        self._verified: set[int] = set()
        self.retrainer: threading.Thread | None = None
        self.retrain_skip: set[int] = set()

    # --- the loop ------------------------------------------------------------------------------
    def run(self, once: bool, batch_window_s: float, poll_s: float) -> dict:
        with self.ledger.begin() as s:
            if current_model_version(s) is None:
                raise ObliviateError(NO_VERSION.format(url=self.ledger.url))
        self.log(f"worker {self.me} ready: {self.ledger.url}, versions in {self.versions_dir}")
        lock = ModelLock(self.ledger)
        try:
            while not self.stop.is_set():
                self._reclaim()
                with self.ledger.begin() as s:
                    wait = seconds_until_ready(s, 0.0 if once else batch_window_s)
                if wait is None:  # nothing queued: the time for background retraining
                    if self.retrain:
                        start_retrain(self, background=not once)
                    if once:
                        break
                    self.stop.wait(poll_s)
                    continue
                if wait > 0:
                    self.stop.wait(min(wait, poll_s))
                    continue
                if not lock.acquire(self.stop):
                    break
                try:
                    self._one_job()
                finally:
                    lock.release()
        finally:
            if self.retrainer is not None:
                self.retrainer.join()
        return self.summary

    def _reclaim(self) -> None:
        with self.ledger.begin() as s:
            done = reclaim_stale(s, self.me, self.lease_s)
        for r in done:
            self.log(f"request {r['id']}: {r['from']} -> {r['to']} ({r['reason']})")
        self.summary["reclaimed"] += [r["id"] for r in done]

    def _current(self) -> ModelVersion:
        """The current version, its files checked against their sha256 once per process."""
        with self.ledger.begin() as s:
            current = current_model_version(s)
            if current is None:
                raise ObliviateError(NO_VERSION.format(url=self.ledger.url))
            removed = clean_versions_dir(s, self.versions_dir, self.lease_s)
        for name in removed:
            self.log(f"removed {self.versions_dir / name}, left by an interrupted job")
        if current.id not in self._verified:
            got = directory_sha256(resolve_model_path(current.path))
            if got != current.weights_sha256:
                raise ObliviateError(f"model version {current.id} at {current.path} does not match its recorded "
                                     f"sha256 ({got[:12]}… vs {current.weights_sha256[:12]}…); restore its files, "
                                     "or register the right model with `obliviate models add`")
            self._verified.add(current.id)
        return current

    def _one_job(self) -> None:
        current = self._current()
        with self.ledger.begin() as s:
            batch = claim_batch(s, self.me, self.batch_size, max_attempts=self.max_attempts)
            ids, kind = [r.id for r in batch], batch[0].kind if batch else None
        if not batch:  # another worker took them
            return
        self.summary["jobs"] += 1
        exact = is_exact_store(resolve_model_path(current.path))
        self.log(f"job: {kind} requests {ids} on model version {current.id}"
                 + (" (exact store: lineage deletion)" if exact else f" ({self.method})"))
        job_dir = new_job_dir(self.versions_dir, self.me)
        try:
            with Heartbeat(self.ledger, self.me, max(1.0, self.lease_s / 4)):
                if exact:
                    exact_job(self, current, ids, job_dir)
                else:
                    self._forget_job(current, ids, kind, job_dir)
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    # --- weight-space jobs ---------------------------------------------------------------------
    def _forget_job(self, current: ModelVersion, ids: list[int], kind: str, job_dir: Path) -> None:
        from obliviate.ledger.job import run_forget, scrub_evidence, write_batch_request

        out = job_dir / "model"
        try:
            with self.ledger.begin() as s:
                request_file = write_batch_request(lock_claimed(s, self.me, ids), job_dir / "request")
            evidence = run_forget(current.path, request_file, self.method, out, self.cfg, self.launch)
            scrub_evidence(out)
        except Exception as err:  # noqa: BLE001 - any error of the job is recorded on its requests
            return self.fail(ids, err)
        verdict = evidence["after"]["verdict"]
        with self.ledger.begin() as s:
            for r in lock_claimed(s, self.me, ids):
                transition(s, r, Status.verifying, actor=self.me, details={"verdict": verdict, "method": self.method})
        if verdict == "removed":
            return self._publish_removed(current, ids, kind, out, evidence)
        from obliviate.table import deciding_text

        reason = f"{verdict}: {deciding_text(evidence['after'])}"
        kept = keep_evidence(self.versions_dir, job_dir, out)
        with self.ledger.begin() as s:
            rows = lock_claimed(s, self.me, ids)
            for r in rows:
                transition(s, r, Status.suppressed_only, actor=self.me, error=reason, evidence=evidence,
                     details={"verdict": verdict, "evidence_path": str(kept) if kept else None,
                              "model_version_id": current.id})
        self.summary["suppressed_only"] += [r.id for r in rows]
        self.log(f"requests {[r.id for r in rows]}: suppressed_only ({reason})")

    def _publish_removed(self, current: ModelVersion, ids: list[int], kind: str, out: Path, evidence: dict) -> None:
        path = None
        try:
            with self.ledger.begin() as s:
                rows = lock_claimed(s, self.me, ids)
                if not rows:
                    return
                version = publish(s, out, self.versions_dir, actor=self.me, request_ids=[r.id for r in rows],
                                  evidence_name="evidence.json", parent_id=current.id,
                                  details={"method": self.method, "verdict": "removed", "kind": kind,
                                           "from_version": current.id})
                path = version.path
                for r in rows:
                    transition(s, r, Status.removed, actor=self.me, evidence=evidence, model_version_id=version.id,
                         details={"evidence_path": version.evidence_path})
        except BaseException as err:
            return abandon(path, err, lambda e: self.fail(ids, e))
        self.summary["removed"] += [r.id for r in rows]
        self.summary["versions"].append(version.id)
        self.log(f"requests {[r.id for r in rows]}: removed; model version {version.id} at {version.path}")

    def fail(self, ids: list[int], err: Exception) -> None:
        message = error_line(err)
        with self.ledger.begin() as s:
            rows = lock_claimed(s, self.me, ids)
            for r in rows:
                transition(s, r, Status.failed, actor=self.me, error=message)
                if r.attempts < r.max_attempts:
                    transition(s, r, Status.queued, actor=self.me, details={"retry": f"attempt {r.attempts + 1} of "
                                                                               f"{r.max_attempts} next"})
        failed = [r.id for r in rows if r.status == Status.failed.value]
        self.summary["failed"] += failed
        self.summary["retried"] += [r.id for r in rows if r.id not in failed]
        self.log(f"requests {[r.id for r in rows]}: failed ({message})"
                 + (f"; {len(rows) - len(failed)} queued again" if len(rows) > len(failed) else ""))

def run_worker(ledger: Ledger, *, once: bool, batch_window_s: float, method: str, cfg: "RunConfig",
               versions_dir: str | Path, worker_id: str | None = None, batch_size: int = 10,
               max_attempts: int | None = None, lease_s: float = 600.0, poll_s: float = 1.0,
               launch: str | None = None, retrain: bool = True, stop: threading.Event | None = None,
               log: Callable[[str], None] | None = None) -> dict:
    """Process the ledger's queue until `stop` is set (or, with `once`, until nothing is queued).

    batch_window_s: wait until the oldest queued request is this old, so close arrivals share a job
    (ignored with `once`); batch_size: most requests per job; max_attempts: retry limit written onto
    each claimed request (None: the request's own); lease_s: a claim not renewed for this long (its
    worker on another host, silent) is reclaimed; launch: run jobs under this `accelerate launch`
    prefix (models larger than one device); retrain: retrain S3T blocks when idle. Returns a summary:
    {"jobs", "removed", "suppressed_only", "failed", "retried", "reclaimed", "versions", "retrained"}.
    Raises ObliviateError when the ledger has no model version yet (`obliviate models add`).
    """
    if batch_window_s < 0:
        raise ObliviateError(f"batch window must be 0 or more seconds, got {batch_window_s}")
    if batch_size < 1:
        raise ObliviateError(f"--batch-size must be at least 1, got {batch_size}")
    if max_attempts is not None and max_attempts < 1:
        raise ObliviateError(f"--max-attempts must be at least 1, got {max_attempts}")
    from obliviate.methods import METHODS

    if METHODS.get(method).__module__.startswith("obliviate.methods.exact."):
        raise ObliviateError(f"--method {method} is an exact method; the worker deletes through a SISA / S3T store "
                             "by itself when the current version is one (obliviate models add STORE_DIR), and "
                             "needs a weight-space method (e.g. npo_kl) for other models")
    worker = Worker(ledger, method=method, cfg=cfg, versions_dir=Path(versions_dir),
                    worker_id=worker_id or worker_identity(), batch_size=batch_size, max_attempts=max_attempts,
                    lease_s=lease_s, launch=launch, retrain=retrain, stop=stop or threading.Event(),
                    log=log or (lambda _: None))
    return worker.run(once, batch_window_s, poll_s)


_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600}


def parse_duration(text: str, what: str = "--batch-window") -> float:
    """Seconds from '60s', '2m', '1h', '0' or '1.5'; anything else raises naming the flag."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*", str(text))
    if not match:
        raise ObliviateError(f"{what} {text!r} is not a duration; give seconds (60, 60s), minutes (2m) or hours (1h)")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]
