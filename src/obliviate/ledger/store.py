"""Requests in, actions on them: submit, suppress, queue, cancel, reject, resupply.

    from obliviate.ledger import open_ledger, store
    with open_ledger().begin() as session:
        sub = store.submit(session, "request.yaml", actor="cli:ops", idempotency_key="TICKET-17")
        sub.request.status        # 'queued': recorded, suppressed (the guard protects it), queued for the worker
        store.cancel(session, sub.request.id, actor="cli:ops")

The request file is read and checked (`obliviate.requests.load_request` / `load_request_data`)
before anything is written; an invalid one raises ObliviateError and stores nothing. The records
are kept in the ledger (payload "data"), so the worker needs no file; `request_data` gives them
back as a `RequestData`. Every function works inside the caller's transaction and changes status
only through `lifecycle.transition`.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from obliviate.errors import ObliviateError
from obliviate.ledger.audit import append_event
from obliviate.ledger.facts import protected_facts
from obliviate.ledger.lifecycle import IllegalTransition, Status, transition
from obliviate.ledger.models import Request, utcnow
from obliviate.ledger.purge import digest, filter_facts, ledger_salt, record_counts, record_digests

if TYPE_CHECKING:
    from obliviate.requests import ForgetRequest, RequestData


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A request file, read and checked: the file's metadata and its records as JSON values."""

    request: "ForgetRequest"
    data: dict  # `RequestData` as a dict


class Submitted(NamedTuple):
    request: Request
    created: bool  # False: the idempotency key named an existing request, which is returned unchanged


def prepare(source: "str | Path | ForgetRequest | Prepared") -> Prepared:
    """Read and check a request (file path or `ForgetRequest`); raises ObliviateError for an invalid one."""
    if isinstance(source, Prepared):
        return source
    from obliviate.requests import ForgetRequest, load_request, load_request_data

    req = source if isinstance(source, ForgetRequest) else load_request(source)
    return Prepared(req, dataclasses.asdict(load_request_data(req)))


def request_data(request: Request) -> "RequestData":
    """The records of a request whose payload still holds them (pending work), as the verifier reads them."""
    from obliviate.requests import RequestData

    if not request.payload or "data" not in request.payload:
        raise ObliviateError(f"request {request.id} is {request.status} and its records are no longer held "
                             "(purged or trimmed to guard facts); supply the request file again (store.resupply)")
    return RequestData(**request.payload["data"])


_SPAN = re.compile(r"^(\d+)\s*([dhw])$")


def parse_due(value: "str | date | datetime | None", start: datetime) -> datetime | None:
    """A deadline: a datetime, a date (end of that day, UTC), an ISO string, or a span from `start` (30d, 72h, 2w)."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(23, 59, 59), timezone.utc)
    text = str(value).strip()
    span = _SPAN.match(text)
    if span:
        n = int(span.group(1))
        return start + {"d": timedelta(days=n), "h": timedelta(hours=n), "w": timedelta(weeks=n)}[span.group(2)]
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return parse_due(date.fromisoformat(text), start)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ObliviateError(f"due date {text!r} is not a date; give an ISO date (2026-06-30), a date and time "
                             "(2026-06-30T17:00, UTC unless it names a zone) or a span such as 30d, 72h or "
                             "2w") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def get_request(session: Session, request_id: int | str, *, for_update: bool = False) -> Request:
    """The request with this id; an unknown id raises ObliviateError. `for_update` locks the row (PostgreSQL)."""
    try:
        key = int(request_id)
    except (TypeError, ValueError):
        raise ObliviateError(f"request id {request_id!r} is not a number; `obliviate request list` shows the "
                             "ids") from None
    query = select(Request).where(Request.id == key)
    if for_update:  # and refresh a copy this session already holds: the locked row is the truth
        query = query.with_for_update().execution_options(populate_existing=True)
    row = session.scalar(query)
    if row is None:
        raise ObliviateError(f"no request {key} in this ledger; `obliviate request list` shows the ids "
                             "(and --db chooses the ledger)")
    return row


def _existing(session: Session, key: str, payload_digest: str) -> Submitted:
    row = session.scalar(select(Request).where(Request.idempotency_key == key))
    assert row is not None
    if row.payload_digest != payload_digest:
        raise ObliviateError(f"idempotency key {key!r} already names request {row.id}, submitted with other "
                             "records; resubmit that request's file unchanged, or use a new key")
    return Submitted(row, False)


def submit(session: Session, source: "str | Path | ForgetRequest | Prepared", *, actor: str,
           requester: str | None = None, legal_basis: str | None = None,
           due_by: "str | date | datetime | None" = None, idempotency_key: str | None = None,
           keep_filter_after_removal: bool | None = None, max_attempts: int = 3, hold: bool = False) -> Submitted:
    """Record a forget request; unless `hold`, suppress it at once and queue it for the worker.

    requester / legal_basis default to the file's; due_by: see `parse_due`. The same
    idempotency_key returns the existing request (created=False) and writes nothing; with other
    records it raises. hold=True leaves it `received` for review (then `suppress` and `enqueue`,
    or `reject`). keep_filter_after_removal: None = the kind's default (knowledge keeps its filter).
    """
    prepared = prepare(source)
    if max_attempts < 1:
        raise ObliviateError(f"max_attempts must be at least 1, got {max_attempts}")
    req, data = prepared.request, prepared.data
    salt = ledger_salt(session)
    payload = {"data": data}
    payload_digest = digest(salt, payload)
    if idempotency_key is not None:
        if session.scalar(select(Request.id).where(Request.idempotency_key == idempotency_key)) is not None:
            return _existing(session, idempotency_key, payload_digest)
    now = utcnow()
    row = Request(external_ref=req.id, subject=req.subject, kind=req.kind, requester=requester or req.requester,
                  legal_basis=legal_basis or req.legal_basis, received_at=now, due_by=parse_due(due_by, now),
                  status=Status.received.value, keep_filter_after_removal=keep_filter_after_removal, attempts=0,
                  max_attempts=max_attempts, idempotency_key=idempotency_key, payload=payload,
                  guard_facts=filter_facts(data), payload_digest=payload_digest, digests=record_digests(salt, data), counts=record_counts(data),
                  updated_at=now)
    try:
        with session.begin_nested():  # a concurrent submit with the same key: return its request
            session.add(row)
    except IntegrityError:
        if idempotency_key is None:
            raise
        return _existing(session, idempotency_key, payload_digest)
    append_event(session, Status.received.value, actor=actor, request_id=row.id, details={
        "kind": row.kind, "external_ref": row.external_ref, "requester": row.requester,
        "legal_basis": row.legal_basis, "due_by": row.due_by, "idempotency_key": idempotency_key,
        "keep_filter_after_removal": keep_filter_after_removal, "counts": row.counts,
        "payload_digest": payload_digest})
    if not hold:
        # suppress() without its return value: recomputing every protected fact here made each
        # submission grow with the ledger (0.83 s at the 40th request of 1,500 records each).
        transition(session, row, Status.suppressed, actor=actor)
        enqueue(session, row, actor=actor)
    return Submitted(row, True)


def suppress(session: Session, request: Request, *, actor: str) -> list[dict]:
    """received -> suppressed: the guard protects the request's facts; returns the protected facts now."""
    transition(session, request, Status.suppressed, actor=actor)
    return protected_facts(session)


def enqueue(session: Session, request: Request, *, actor: str) -> None:
    """suppressed (or failed / suppressed_only, to retry) -> queued: the worker may claim it."""
    transition(session, request, Status.queued, actor=actor)


def reject(session: Session, request: Request, *, actor: str, reason: str) -> None:
    """received -> rejected (e.g. no legal basis); the payload is purged."""
    transition(session, request, Status.rejected, actor=actor, error=reason, details={"reason": reason})


def cancel(session: Session, request: Request | int, *, actor: str, reason: str | None = None) -> Request:
    """-> cancelled (the request was withdrawn); the payload is purged. Illegal once removed, or while a
    job runs: raises IllegalTransition naming the legal targets."""
    row = request if isinstance(request, Request) else get_request(session, request, for_update=True)
    transition(session, row, Status.cancelled, actor=actor, details={"reason": reason} if reason else None)
    return row


def resupply(session: Session, request: Request, source: "str | Path | ForgetRequest | Prepared", *,
             actor: str) -> None:
    """Give a request trimmed to its guard facts (suppressed_only) its records back, and queue it again.

    The file's forget records must be the ones submitted (their salted digests must match).
    """
    prepared = prepare(source)
    new = record_digests(ledger_salt(session), prepared.data)
    if sorted(new["forget"] + new["passages"] + new["probes"]) != sorted(
            request.digests["forget"] + request.digests["passages"] + request.digests["probes"]):
        raise ObliviateError(f"the request file does not hold the forget records of request {request.id} (their "
                             "digests differ); give the file it was submitted with, or submit a new request")
    if request.status != Status.suppressed_only.value:
        raise IllegalTransition(f"request {request.id} is {request.status}; only a suppressed_only request is "
                                "given its records back")
    request.payload, request.guard_facts = {"data": prepared.data}, filter_facts(prepared.data)
    transition(session, request, Status.queued, actor=actor, details={"resupplied": True})
