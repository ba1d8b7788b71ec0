"""Reading the ledger: list requests, show one, as JSON-ready dicts that never hold record content.

    from obliviate.ledger.views import list_requests, show
    rows = list_requests(session, status="queued")   # Request rows, oldest first
    show(session, 3)                                 # a dict: fields, what the payload holds, every event

`show` reports what the payload holds ("records", "guard facts", "purged") and its counts and
digests, never the records themselves, so it is safe to print, log or attach to a ticket.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from obliviate.ledger.lifecycle import status_of
from obliviate.ledger.models import Event, Request
from obliviate.ledger.purge import keeps_filter
from obliviate.ledger.store import get_request


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def list_requests(session: Session, status: str | None = None) -> list[Request]:
    """Every request (or those in `status`; an unknown status raises ObliviateError naming the valid ones)."""
    query = select(Request).order_by(Request.id)
    if status is not None:
        query = query.where(Request.status == status_of(status).value)
    return list(session.scalars(query))


def payload_state(request: Request) -> str:
    if request.payload is not None and "data" in request.payload:
        return "records"
    return "guard facts" if request.guard_facts is not None else "purged"


def summary(request: Request) -> dict:
    """One request's fields (no payload content), as JSON values."""
    return {"id": request.id, "status": request.status, "kind": request.kind, "subject": request.subject,
            "external_ref": request.external_ref, "requester": request.requester,
            "legal_basis": request.legal_basis, "received_at": _iso(request.received_at),
            "due_by": _iso(request.due_by), "updated_at": _iso(request.updated_at), "attempts": request.attempts,
            "max_attempts": request.max_attempts, "idempotency_key": request.idempotency_key,
            "keep_filter_after_removal": keeps_filter(request),
            "keep_filter_policy": request.keep_filter_after_removal, "model_version_id": request.model_version_id,
            "last_error": request.last_error, "payload": payload_state(request), "purged_at": _iso(request.purged_at),
            "claimed_by": request.claimed_by, "claimed_at": _iso(request.claimed_at)}


def event_dict(ev: Event) -> dict:
    return {"id": ev.id, "at": ev.at.isoformat(timespec="microseconds"), "actor": ev.actor, "type": ev.type,
            "details": ev.details, "hash": ev.hash}


def show(session: Session, request_id: int | str) -> dict:
    """A request's summary, counts, digests, evidence figures and events; never its records."""
    request = get_request(session, request_id)
    events = session.scalars(select(Event).where(Event.request_id == request.id).order_by(Event.id))
    return {**summary(request), "counts": request.counts, "digests": request.digests,
            "payload_digest": request.payload_digest, "evidence": request.evidence,
            "events": [event_dict(e) for e in events]}
