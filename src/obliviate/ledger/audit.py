"""The hash-chained audit trail: every event commits to the one before it.

    hash = sha256(prev_hash ‖ canonical JSON of {request_id, at, actor, type, details})

`canonical_json` sorts keys, drops whitespace and writes UTF-8, so the same content always gives
the same bytes; the first event's prev_hash is `GENESIS`. Editing any event's content, or deleting
or reordering events, breaks the chain at the first affected event, which `verify_chain` names.
(Deleting the newest events leaves a shorter valid chain: record the head hash `verify_chain`
reports somewhere else, e.g. in a ticket, to detect that too.)

    from obliviate.ledger.audit import append_event, verify_chain
    append_event(session, "model_version", actor="worker-1", details={"id": 3})
    ok, broken_id, message = verify_chain(session)

Appends are serialized so two writers cannot both extend the same event: on PostgreSQL a
transaction-level advisory lock is taken before the last hash is read (held until commit), on
SQLite the transaction already holds the single writer lock (`BEGIN IMMEDIATE`, see `db.py`); and
`events.prev_hash` is unique, so a fork would fail to insert even if those were bypassed. Keep
transactions that append events short: the lock is held until they end. In one transaction, lock
the request rows you need (SELECT ... FOR UPDATE [SKIP LOCKED]) before the first append, never
after it: a writer holding the chain lock that waits for a row held by one waiting for the chain
lock is a deadlock (PostgreSQL detects it and aborts one of the two).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, NamedTuple

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from obliviate.ledger.db import CHAIN_LOCK
from obliviate.ledger.models import Event, utcnow

GENESIS = "0" * 64


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    raise TypeError(f"event details must be JSON values, got {type(value).__name__}: {value!r}")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (not \\u escapes), no NaN: one byte string per JSON value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=_default).encode("utf-8")


def event_content(request_id: int | None, at: datetime, actor: str, type: str, details: dict) -> dict:
    """The part of an event its hash covers (everything but id and the hashes)."""
    return {"request_id": request_id, "at": at.isoformat(timespec="microseconds"), "actor": actor, "type": type,
            "details": details}


def chain_hash(prev_hash: str, content: dict) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(content)).hexdigest()


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})


def append_event(session: Session, type: str, *, actor: str, details: dict | None = None,
                 request_id: int | None = None) -> Event:
    """Append one event to the chain in `session`'s transaction and return it (flushed, with its id).

    `details` must be JSON values (datetimes and paths are written as strings); it is stored as
    the canonical JSON reads back, so the stored and the hashed content are the same.
    """
    details = json.loads(canonical_json(details or {}))
    at = utcnow()
    _lock(session)
    session.flush()  # pending rows first: the events below must see them, and ids keep chain order
    last = session.scalar(select(Event.hash).order_by(Event.id.desc()).limit(1))
    prev = last or GENESIS
    row = Event(request_id=request_id, at=at, actor=actor, type=type, details=details, prev_hash=prev,
                hash=chain_hash(prev, event_content(request_id, at, actor, type, details)))
    session.add(row)
    session.flush()
    return row


class ChainCheck(NamedTuple):
    """The result of `verify_chain`: ok, the id of the first broken event (None when ok), and a message."""

    ok: bool
    broken_id: int | None
    message: str


def verify_chain(session: Session) -> ChainCheck:
    """Recompute every event's hash in id order; name the first one whose link or content is wrong."""
    prev, count = GENESIS, 0
    rows = session.execute(select(Event).order_by(Event.id).execution_options(yield_per=500)).scalars()
    for ev in rows:
        where = f"event {ev.id} ({ev.type}" + (f", request {ev.request_id})" if ev.request_id is not None else ")")
        if ev.prev_hash != prev:
            what = "the first event" if count == 0 else f"the event before it ({prev[:12]}…)"
            return ChainCheck(False, ev.id, f"{where}: its prev_hash does not match {what}; an event was "
                                            "deleted, inserted or reordered here")
        if chain_hash(prev, event_content(ev.request_id, ev.at, ev.actor, ev.type, ev.details)) != ev.hash:
            return ChainCheck(False, ev.id, f"{where}: its content does not match its hash; it was edited "
                                            "after it was written")
        prev, count = ev.hash, count + 1
    return ChainCheck(True, None, f"{count} events, chain intact; head {prev}")


def event_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Event)) or 0
