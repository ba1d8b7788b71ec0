"""What the ledger keeps of a request's payload, state by state: the ledger must not keep the data
it exists to delete.

    while work is pending (received .. verifying, failed)   the full records (payload "data") and
                                                            the guard facts (`guard_facts`)
    suppressed_only                                         only the guard facts
    removed, kind: knowledge, filter kept (the default)     only the guard facts
    removed (data, or knowledge whose policy drops it)      nothing: both NULL
    cancelled, rejected                                     nothing

Guard facts are the forget records' (subject, question, answer) and passage texts, and for a
knowledge request its multiple-choice probes as (question, correct answer): what a content filter
must match, without the reference, retain and neighbour records or the paraphrases.

What outlives the payload is computed at submission: counts of each part, and a salted digest
(HMAC-SHA256 keyed by the ledger's random salt, `ledger_meta.salt`) of each forget record's
canonical JSON ({question, answer}, {text}), so whoever holds a record can later show it was in a
request, while the ledger alone cannot list them. Verification evidence is reduced to its aggregate
figures (`evidence_summary`). A digest can confirm a guess, so it is of a whole record (question
and answer together), never of an answer alone.

Why knowledge keeps its filter: UnUnlearning (Shumailov et al. 2024, arXiv 2407.00106) shows that
knowledge removed from the weights comes back when a user supplies it in context, so removal from
the weights does not end the need to filter it. Knowledge requests (hazards, concepts) concern no
person, so holding the facts the filter needs does not defeat the ledger's privacy purpose; data
requests (privacy) drop their guard and their payload once removed. `keep_filter_after_removal`
on the request overrides the default either way.

On SQLite, deleted bytes are overwritten (`PRAGMA secure_delete`) and the write-ahead log is
truncated after a purge commits; on PostgreSQL, old row versions stay in the table files until
VACUUM reclaims them.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from obliviate.errors import ObliviateError
from obliviate.ledger.audit import append_event, canonical_json
from obliviate.ledger.models import Meta, Request, utcnow

FULL_STATES = ("received", "suppressed", "queued", "unlearning", "verifying", "failed")
_TESTS = ("candidate", "reference", "difference", "lower", "upper", "margin", "above", "equivalent")


def ledger_salt(session: Session) -> bytes:
    meta = session.get(Meta, "salt")
    assert meta is not None, "ledger_meta.salt is written by migration 0001"
    return bytes.fromhex(meta.value)


def digest(salt: bytes, value: Any) -> str:
    """HMAC-SHA256 of `value`'s canonical JSON, keyed by the ledger's salt."""
    return hmac.new(salt, canonical_json(value), hashlib.sha256).hexdigest()


def record_digests(salt: bytes, data: dict) -> dict[str, list[str]]:
    """One salted digest per forget QA record, forget passage and knowledge probe, in file order."""
    return {"forget": [digest(salt, {"question": r["question"], "answer": r["answer"]}) for r in data["forget"]],
            "passages": [digest(salt, {"text": p["text"]}) for p in data["forget_passages"]],
            "probes": [digest(salt, {"question": p["question"], "answer": p["choices"][p["answer"]]})
                       for p in data["probes"]] if data["kind"] == "knowledge" else []}


def record_counts(data: dict) -> dict[str, int]:
    keys = ("forget", "forget_passages", "reference", "reference_passages", "retain", "retain_passages", "probes",
            "neighbour_probes")
    return {k: len(data.get(k) or []) for k in keys}


def filter_facts(data: dict) -> list[dict]:
    """What the guard needs of a request's records: {subject, question, answer} and {subject, text} facts."""
    def subject(record: dict) -> str | None:
        person = record.get("person")
        # the loader names an unnamed record "record <line>" (data) or by its question (knowledge)
        return None if person in (None, record.get("question")) or str(person).startswith("record ") else person

    facts = [{"subject": subject(r), "question": r["question"], "answer": r["answer"]} for r in data["forget"]]
    facts += [{"subject": subject(p), "text": p["text"]} for p in data["forget_passages"]]
    if data["kind"] == "knowledge":
        facts += [{"subject": None, "question": p["question"], "answer": p["choices"][p["answer"]]}
                  for p in data["probes"]]
    return facts


def keeps_filter(request: Request) -> bool:
    """Whether the guard keeps this request's facts once it is removed: the policy, else knowledge only."""
    if request.keep_filter_after_removal is not None:
        return request.keep_filter_after_removal
    return request.kind == "knowledge"


def retention(request: Request) -> str | None:
    """What the payload may hold in the request's current state: 'data', 'filter' or None."""
    if request.status in FULL_STATES:
        return "data"
    if request.status == "suppressed_only" or request.status == "removed" and keeps_filter(request):
        return "filter"
    return None


def _checkpoint_after_commit(session: Session) -> None:
    engine = session.get_bind()
    if engine.dialect.name != "sqlite" or session.info.get("obliviate_checkpoint"):
        return
    session.info["obliviate_checkpoint"] = True

    def checkpoint(sess: Session) -> None:
        sess.info.pop("obliviate_checkpoint", None)
        try:  # best effort: a reader holding an old snapshot keeps the log until it ends
            with engine.connect() as conn:
                conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception:  # noqa: BLE001 - the purge itself is committed; the log is truncated next time
            pass

    event.listen(session, "after_commit", checkpoint, once=True)


def apply_retention(session: Session, request: Request) -> str | None:
    """Trim or drop what `retention` no longer allows; returns 'trimmed', 'purged' or None (unchanged)."""
    keep = retention(request)
    if keep == "data" or request.payload is None and (keep == "filter" or request.guard_facts is None):
        return None
    request.payload = None
    if keep == "filter":
        done = "trimmed"
    else:
        request.guard_facts, request.purged_at, done = None, utcnow(), "purged"
    _checkpoint_after_commit(session)
    return done


def purge_payload(session: Session, request: Request, *, actor: str, reason: str | None = None) -> None:
    """Delete what is left of a finished request's payload now (e.g. a knowledge filter no longer wanted).

    Digests, counts and evidence figures stay. A request whose records are still needed (pending
    work) raises: cancel it first.
    """
    if retention(request) == "data":
        raise ObliviateError(f"request {request.id} is {request.status}: its records are still needed for the "
                             "work ahead; cancel it first (obliviate request cancel)")
    if request.payload is None and request.guard_facts is None:
        return
    request.payload, request.guard_facts, request.purged_at, request.updated_at = None, None, utcnow(), utcnow()
    _checkpoint_after_commit(session)
    append_event(session, "payload_purged", actor=actor, request_id=request.id,
                 details={"reason": reason} if reason else {})


def _numbers(value: Any, depth: int = 0) -> Any:
    """`value` with every leaf that is not a number, bool or None dropped (dicts up to 3 levels)."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, dict) and depth < 3:
        kept = {str(k): _numbers(v, depth + 1) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not _DROP}
    return _DROP


_DROP = object()


def evidence_summary(evidence: dict) -> dict:
    """The aggregate figures of an evidence dict (as `obliviate forget` writes): verdicts, method, sizes,
    and per test its model / reference values, difference, bounds and margin. No record text survives."""
    out: dict[str, Any] = {}
    for key in ("verdict", "method", "kind"):
        if isinstance(evidence.get(key), str):
            out[key] = evidence[key]
    for key in ("seconds", "sizes", "figures", "lineage"):
        kept = _numbers(evidence.get(key))
        if kept is not _DROP and kept is not None:
            out[key] = kept
    for stage in ("before", "after"):
        v = evidence.get(stage)
        if isinstance(v, dict):
            tests = v.get("evidence") if isinstance(v.get("evidence"), dict) else {}
            out[stage] = {"verdict": v.get("verdict") if isinstance(v.get("verdict"), str) else None,
                          "tests": {str(name): {f: e[f] for f in _TESTS if isinstance(e.get(f), (int, float))}
                                    for name, e in tests.items() if isinstance(e, dict)}}
    return out
