"""The worker's side of the queue: who a worker is, the model lock, claiming a batch, reclaiming after a crash.

    from obliviate.ledger.claim import ModelLock, claim_batch, reclaim_stale, seconds_until_ready, worker_identity
    me = worker_identity()                               # "host:pid:start-ms": dead once that process is gone
    with ledger.begin() as s:
        reclaim_stale(s, me, lease_s=600)               # requests a dead worker left in unlearning / verifying
    with ModelLock(ledger) as lock:                      # one job at a time changes the model lineage
        with ledger.begin() as s:
            batch = claim_batch(s, me, limit=10)         # queued -> unlearning, claimed_by / claimed_at set

Claiming locks the rows with `SELECT ... FOR UPDATE SKIP LOCKED` (PostgreSQL: a row another
transaction holds is skipped, so two workers never take one request; SQLite ignores the clause and
its `BEGIN IMMEDIATE` makes the transaction the only writer). Rows are locked before the first event
is appended, the order `audit.py` asks for. A batch holds requests of one kind (data and knowledge
are verified differently); a request being retried (attempts >= 1) runs alone, so one bad request
cannot fail a whole batch twice.

Why a model lock: every job turns the *current* version into the next one. Two jobs that start from
one version would each write a child of it, and the newer child would serve the other's forgotten
data again. So a worker holds the lock from reading the current version to registering its successor
(PostgreSQL: a session advisory lock, released when its connection ends, also on kill -9; SQLite: a
`filelock` beside the database file, released by the OS when the process dies).
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import datetime, timezone

import psutil
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from obliviate.errors import ObliviateError
from obliviate.ledger.db import Ledger
from obliviate.ledger.lifecycle import Status, transition
from obliviate.ledger.models import Request, utcnow

LOCK_KEYS = {"model": 0x6F626C33, "retrain": 0x6F626C34}  # PostgreSQL advisory keys "obl3", "obl4"
RUNNING = (Status.unlearning.value, Status.verifying.value)


def _started_ms(pid: int) -> int:
    return int(psutil.Process(pid).create_time() * 1000)


def worker_identity(pid: int | None = None) -> str:
    """`host:pid:start-ms` of this process: unique on the host even when the pid is reused later."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_started_ms(pid)}"


def claimer_alive(claimed_by: str | None) -> bool | None:
    """Whether the worker named `claimed_by` still runs: True / False for one of this host, None when
    it cannot be told (another host, or a worker id given by hand): then only its lease decides."""
    parts = (claimed_by or "").rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    try:
        process = psutil.Process(int(parts[1]))
        return process.status() != psutil.STATUS_ZOMBIE and _started_ms(process.pid) == int(parts[2])
    except psutil.NoSuchProcess:
        return False


def seconds_until_ready(session: Session, batch_window_s: float, now: datetime | None = None) -> float | None:
    """None when nothing is queued; else how long until the oldest queued request is `batch_window_s`
    old (0 or less: claim now). Requests that arrive within the window join the same batch."""
    oldest = session.scalar(select(func.min(Request.received_at)).where(Request.status == Status.queued.value))
    if oldest is None:
        return None
    if oldest.tzinfo is None:  # the stored UTC digits, should MIN() bypass the column type
        oldest = oldest.replace(tzinfo=timezone.utc)
    return batch_window_s - ((now or utcnow()) - oldest).total_seconds()


def _locked(query):
    return query.with_for_update(skip_locked=True).execution_options(populate_existing=True)


def claim_batch(session: Session, worker_id: str, limit: int, *, max_attempts: int | None = None) -> list[Request]:
    """Claim up to `limit` queued requests of the oldest one's kind: lock them, set claimed_by /
    claimed_at, move them to unlearning (attempts += 1). `max_attempts`: the worker's retry limit,
    written onto each claimed request. Returns [] when nothing is claimable."""
    if limit < 1:
        raise ObliviateError(f"batch size must be at least 1, got {limit}")
    queued = select(Request).where(Request.status == Status.queued.value).order_by(Request.id)
    first = session.scalar(_locked(queued.limit(1)))
    if first is None:
        return []
    if first.attempts > 0:
        batch = [first]
    else:  # the row already locked by this transaction is not skipped: it comes back first
        batch = list(session.scalars(_locked(queued.where(Request.kind == first.kind, Request.attempts == 0)
                                             .limit(limit))))
    now, ids = utcnow(), [r.id for r in batch]
    for r in batch:
        r.claimed_by, r.claimed_at = worker_id, now
        extra = {}
        if max_attempts is not None and max_attempts != r.max_attempts:
            r.max_attempts, extra = max_attempts, {"max_attempts": max_attempts}
        transition(session, r, Status.unlearning, actor=worker_id,
                   details={"claimed_by": worker_id, "batch": ids, **extra})
    return batch


def lock_claimed(session: Session, worker_id: str, ids: list[int]) -> list[Request]:
    """Lock the batch's rows again for the next step; only those this worker still holds (a request
    reclaimed meanwhile by another worker, its lease having run out, is left to that worker)."""
    rows = session.scalars(select(Request).where(Request.id.in_(ids)).order_by(Request.id).with_for_update()
                           .execution_options(populate_existing=True))
    return [r for r in rows if r.claimed_by == worker_id and r.status in RUNNING]


def reclaim_stale(session: Session, worker_id: str, lease_s: float, now: datetime | None = None) -> list[dict]:
    """Requests left in unlearning / verifying by a worker that is gone go back to queued (or to failed
    once their attempts are spent); attempts were counted when they entered unlearning.

    Gone: a worker of this host whose process no longer runs; any other worker whose claim was not
    renewed (`heartbeat`) for `lease_s` seconds; and this worker's own claims (it calls this between
    jobs, when it holds none). Returns one {"id", "from", "to", "claimed_by", "reason"} per request.
    """
    now = now or utcnow()
    rows = session.scalars(_locked(select(Request).where(Request.status.in_(RUNNING)).order_by(Request.id)))
    stale = []
    for r in rows:
        alive = claimer_alive(r.claimed_by)
        age = (now - (r.claimed_at or r.updated_at)).total_seconds()
        if r.claimed_by == worker_id:
            stale.append((r, "left by this worker's interrupted job"))
        elif alive is False:
            stale.append((r, f"worker {r.claimed_by} is no longer running"))
        elif alive is None and age > lease_s:
            stale.append((r, f"claim of {r.claimed_by} not renewed for {age:.0f} s (lease {lease_s:.0f} s)"))
    out = []
    for r, reason in stale:
        here, claimer = r.status, r.claimed_by
        r.claimed_by = r.claimed_at = None
        if r.attempts >= r.max_attempts:
            transition(session, r, Status.failed, actor=worker_id, details={"reclaimed_from": claimer},
                       error=f"attempt {r.attempts} of {r.max_attempts} did not finish: {reason}")
        else:
            transition(session, r, Status.queued, actor=worker_id, details={"reclaimed_from": claimer,
                                                                             "reason": reason})
        out.append({"id": r.id, "from": here, "to": r.status, "claimed_by": claimer, "reason": reason})
    return out


def heartbeat(session: Session, worker_id: str) -> int:
    """Renew this worker's claims (claimed_at = now); no event: a lease is not part of the audit trail."""
    result = session.execute(update(Request).where(Request.claimed_by == worker_id, Request.status.in_(RUNNING))
                             .values(claimed_at=utcnow()))
    return result.rowcount or 0


class Heartbeat:
    """A thread renewing this worker's claims every `every_s` seconds while a job runs."""

    def __init__(self, ledger: Ledger, worker_id: str, every_s: float):
        self.ledger, self.worker_id, self.every_s = ledger, worker_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="obliviate-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                with self.ledger.begin() as session:
                    heartbeat(session, self.worker_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the lease is long
                pass

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class ModelLock:
    """An inter-process lock of one ledger (`name`: "model" for jobs, "retrain" for background retraining)."""

    def __init__(self, ledger: Ledger, name: str = "model"):
        self.ledger, self.name, self.key = ledger, name, LOCK_KEYS[name]
        self._conn = None
        self._file = None
        if ledger.dialect == "sqlite":
            from filelock import FileLock

            database = ledger.engine.url.database
            if not database or database == ":memory:":
                raise ObliviateError("the worker needs a ledger file or server; an in-memory SQLite database "
                                     "cannot be shared with it (pass --db path/to/ledger.db)")
            self._file = FileLock(f"{database}.{name}-lock")

    def try_acquire(self, wait_s: float = 0.0) -> bool:
        """Take the lock, waiting up to `wait_s` seconds; False if another process holds it still.

        PostgreSQL queues waiters in order, so two workers alternate instead of one taking every job."""
        if self._file is not None:
            from filelock import Timeout

            try:
                self._file.acquire(timeout=wait_s, poll_interval=0.05)
                return True
            except Timeout:
                return False
        from sqlalchemy.exc import OperationalError

        conn = self.ledger.engine.connect()
        try:
            if wait_s > 0:
                conn.execute(text(f"SET LOCAL lock_timeout = '{int(wait_s * 1000)}ms'"))
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
                got = True
            else:
                got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
            conn.commit()  # a session-level lock outlives the transaction; the connection holds it
        except OperationalError as err:
            from psycopg.errors import LockNotAvailable

            conn.rollback()
            if not isinstance(err.orig, LockNotAvailable):  # lock_timeout ran out: someone else holds it
                conn.close()
                raise
            got = False
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def acquire(self, stop: threading.Event | None = None, wait_s: float = 0.5) -> bool:
        """Wait for the lock; False if `stop` was set first (checked every `wait_s` seconds)."""
        while not self.try_acquire(wait_s):
            if stop is not None and stop.is_set():
                return False
        return True

    def release(self) -> None:
        if self._file is not None:
            if self._file.is_locked:
                self._file.release()
            return
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            conn.commit()
            conn.close()
        except Exception:  # noqa: BLE001 - a connection that cannot unlock is dropped, which unlocks
            conn.invalidate()
            conn.close()

    def __enter__(self) -> "ModelLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

