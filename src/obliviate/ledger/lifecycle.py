"""The one state machine of a forget request: every status change goes through `transition`.

    from             legal targets
    received         suppressed, rejected, cancelled
    suppressed       queued, cancelled
    queued           unlearning, cancelled
    unlearning       verifying, removed (exact deletion), failed, queued (crash reclaim)
    verifying        removed, suppressed_only, failed, queued (crash reclaim)
    failed           queued (retry, while attempts < max_attempts), cancelled
    suppressed_only  queued (retry later, once its records are supplied again), cancelled
    removed, cancelled, rejected: final

- `suppressed` is entered at once on submission: from then on the guard protects the facts.
- `unlearning -> removed` is exact deletion through a SISA / S3T store (the lineage proof is the
  evidence; no verification loop); a weight-space job always passes through `verifying`.
- `unlearning`/`verifying -> queued` is the worker's crash reclaim; entering `unlearning` raises
  `attempts`, so a reclaimed request is tried again with its count raised.
- `failed -> queued` is a retry, legal while attempts < max_attempts. A failed request keeps its
  full payload and its guard: failing to remove the data does not end the promise to suppress it.
- A running job (`unlearning`, `verifying`) cannot be cancelled; `removed`, `cancelled`, `rejected`
  are final.
- Entering `queued` needs the request's records (the payload's "data"): a request trimmed to its
  guard facts (`suppressed_only`) is retried after `store.resupply` gives them back.

What the payload keeps in each state is decided here too (`purge.apply_retention`), so no code
path can move a request to `removed` and forget to purge it.
"""

from __future__ import annotations

from enum import Enum

from sqlalchemy.orm import Session

from obliviate.errors import ObliviateError
from obliviate.ledger.audit import append_event
from obliviate.ledger.models import Event, Request, utcnow


class Status(str, Enum):
    received = "received"
    suppressed = "suppressed"
    queued = "queued"
    unlearning = "unlearning"
    verifying = "verifying"
    removed = "removed"
    suppressed_only = "suppressed_only"
    failed = "failed"
    cancelled = "cancelled"
    rejected = "rejected"

    def __str__(self) -> str:
        return self.value


S = Status
TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    S.received: (S.suppressed, S.rejected, S.cancelled),
    S.suppressed: (S.queued, S.cancelled),
    S.queued: (S.unlearning, S.cancelled),
    S.unlearning: (S.verifying, S.removed, S.failed, S.queued),
    S.verifying: (S.removed, S.suppressed_only, S.failed, S.queued),
    S.failed: (S.queued, S.cancelled),
    S.suppressed_only: (S.queued, S.cancelled),
    S.removed: (),
    S.cancelled: (),
    S.rejected: (),
}
FINAL = tuple(s for s, targets in TRANSITIONS.items() if not targets)
# The guard protects a request's facts in these states (plus removed knowledge that keeps its filter).
GUARDED = (S.suppressed, S.queued, S.unlearning, S.verifying, S.failed, S.suppressed_only)


class IllegalTransition(ObliviateError):
    """A status change the lifecycle does not allow; the message names from, to and the legal targets."""


def status_of(value: str | Status) -> Status:
    """`value` as a Status; an unknown name raises ObliviateError listing the valid ones."""
    try:
        return Status(str(value))
    except ValueError:
        from obliviate.registry import did_you_mean

        names = [s.value for s in Status]
        guess = did_you_mean(str(value), names)
        hint = f"did you mean '{guess}'? " if guess else ""
        raise ObliviateError(f"unknown status {str(value)!r}; {hint}valid: {', '.join(names)}") from None


def legal_targets(status: str | Status) -> tuple[Status, ...]:
    return TRANSITIONS[status_of(status)]


def check(request: Request, to: Status) -> None:
    """Raise IllegalTransition unless `request` may move to `to` now."""
    here = status_of(request.status)
    targets = TRANSITIONS[here]
    if to not in targets:
        legal = f"legal from {here}: {', '.join(targets)}" if targets else f"{here} is final"
        raise IllegalTransition(f"request {request.id} is {here}; it cannot become {to} ({legal})")
    if here is S.failed and to is S.queued and request.attempts >= request.max_attempts:
        raise IllegalTransition(f"request {request.id} is failed after {request.attempts} of {request.max_attempts} "
                                "attempts; it cannot become queued again (cancel it, or raise max_attempts)")
    if to is S.queued and not (request.payload and "data" in request.payload):
        raise IllegalTransition(f"request {request.id} is {here} and holds only its guard facts, not the records "
                                "to forget; it cannot become queued until they are supplied again (store.resupply)")


def transition(session: Session, request: Request, to: str | Status, *, actor: str, details: dict | None = None,
               error: str | None = None, evidence: dict | None = None,
               model_version_id: int | None = None) -> Event:
    """Move `request` to `to`, apply what the new state keeps of the payload, and append the event.

    error: recorded as `last_error` (failed, suppressed_only: the reason); evidence: the
    verification's evidence dict (only its aggregate figures are kept, see `purge.evidence_summary`);
    model_version_id: the version that satisfied it (removed). Returns the appended event, whose
    details hold {"from", "to"} plus `details`, the error and the kept evidence figures.
    """
    from obliviate.ledger.purge import apply_retention, evidence_summary

    to = status_of(to)
    check(request, to)
    here = status_of(request.status)
    request.status = to.value
    request.updated_at = utcnow()
    if to is S.unlearning:
        request.attempts += 1
    if error is not None:
        request.last_error = error
    if evidence is not None:
        request.evidence = evidence_summary(evidence)
    if model_version_id is not None:
        request.model_version_id = model_version_id
    apply_retention(session, request)
    payload = {"from": here.value, "to": to.value, "attempts": request.attempts, **(details or {})}
    if error is not None:
        payload["error"] = error
    if evidence is not None:
        payload["evidence"] = request.evidence
    if model_version_id is not None:
        payload["model_version_id"] = model_version_id
    return append_event(session, to.value, actor=actor, details=payload, request_id=request.id)
