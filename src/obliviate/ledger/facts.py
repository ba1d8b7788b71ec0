"""The guard's protected facts, derived from the ledger: what must not be said right now.

    from obliviate.ledger.facts import protected_facts, protected_targets
    with ledger.begin() as session:
        facts = protected_facts(session)      # [{request_id, kind, subject, question, answer} | {..., text}]
        targets = protected_targets(session)  # ForgetTarget-shaped dicts: {"name", "facts", "texts"}

A request's facts are protected while it is suppressed, queued, unlearning, verifying or failed
(a failed attempt does not end the promise to suppress), and in suppressed_only; and after removal
for a request that keeps its filter (knowledge by default: see `purge.py` for why). Data requests
drop out once removed; cancelled and rejected ones too. The guard sees a change once the
transaction that made it commits.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from obliviate.ledger.lifecycle import GUARDED, Status
from obliviate.ledger.models import Request
from obliviate.ledger.purge import keeps_filter


def request_facts(request: Request) -> list[dict]:
    """The guard facts one request holds now (whatever its status), each tagged with its id and kind."""
    return [{"request_id": request.id, "kind": request.kind, **f} for f in request.guard_facts or []]


def is_protected(request: Request) -> bool:
    """Whether the guard must protect this request's facts in its current status."""
    return request.status in {s.value for s in GUARDED} or (request.status == Status.removed.value
                                                             and keeps_filter(request))


def protected_facts(session: Session) -> list[dict]:
    """Every fact the guard must protect now, in request order."""
    statuses = [s.value for s in GUARDED] + [Status.removed.value]
    # The records stay unread: loading them made this grow with every pending request's size.
    rows = session.scalars(select(Request).options(defer(Request.payload))
                           .where(Request.status.in_(statuses), Request.guard_facts.is_not(None)).order_by(Request.id))
    return [f for r in rows if is_protected(r) for f in request_facts(r)]


def protected_targets(session: Session) -> list[dict]:
    """`protected_facts` grouped as the guard's target file lines (`guards.targets.ForgetTarget.from_dict`):
    one target per subject; a fact without a subject is its own target, named by its question or text."""
    targets: dict[str, dict] = {}
    for f in protected_facts(session):
        name = f["subject"] or f.get("question") or f["text"][:200]
        t = targets.setdefault(name, {"name": name, "facts": [], "texts": []})
        if "text" in f:
            t["texts"].append(f["text"])
        else:
            t["facts"].append({"question": f["question"], "answer": f["answer"]})
    return list(targets.values())
