"""The ledger's tables as SQLAlchemy 2 typed ORM classes; the schema itself lives in Alembic versions.

    requests        one row per forget request: who asked, why, by when, where it stands, its payload
    events          append-only, hash-chained audit trail (see `audit.py`)
    model_versions  every model the worker produced: parent, path, weights checksum, requests included
    ledger_meta     key/value settings of this ledger (the salt of the payload digests)

Every timestamp is stored and returned as an aware UTC datetime (`UTCDateTime`), so SQLite (which
keeps no time zone) and PostgreSQL give the same values, and the audit hash of an event is the same
on both. A change here needs a new file in `migrations/versions/` (the tests compare the two).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timestamp that goes in as UTC and comes back as an aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        # SQLite stores the wall-clock digits only: give it the UTC ones.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# none_as_null: a purged payload is SQL NULL, not the JSON text 'null'.
JSONValue = JSON(none_as_null=True)


# Named constraints, so the hand-written migrations name them the same way on every backend.
NAMING = {"ix": "ix_%(table_name)s_%(column_0_name)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Meta(Base):
    """Small settings of one ledger, written by the migrations: `salt` (hex) keys the payload digests."""

    __tablename__ = "ledger_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelVersion(Base):
    """One model the ledger knows: the base model, or one produced by the worker from its parent."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    path: Mapped[str] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    request_ids: Mapped[list[int]] = mapped_column(JSONValue, default=list)  # requests this version satisfies
    evidence_path: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)  # method, verdict, store kind, ...


class Request(Base):
    """One forget request. `status` changes only through `lifecycle.transition`.

    payload: while work is pending {"request": {...file fields}, "data": RequestData as a dict};
    otherwise NULL (purged). guard_facts: what the guard protects for it (`purge.filter_facts`), from
    submission while it is pending, in suppressed_only, and in removed for a knowledge request that
    keeps its filter; otherwise NULL. A column of its own so the guard never loads the records.
    `digests` (salted, see `purge.py`) and `counts` outlive both.
    """

    __tablename__ = "requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_ref: Mapped[str | None] = mapped_column(String(200))  # the file's `id`, e.g. a ticket number
    subject: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(16))  # data | knowledge
    requester: Mapped[str | None] = mapped_column(String(500))
    legal_basis: Mapped[str | None] = mapped_column(String(500))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), index=True)
    # None = the default for the kind: knowledge keeps its content filter after removal, data drops it.
    keep_filter_after_removal: Mapped[bool | None] = mapped_column(Boolean)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # raised each time it enters `unlearning`
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    guard_facts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONValue)
    payload_digest: Mapped[str] = mapped_column(String(64))  # salted digest of the submitted payload
    digests: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)  # salted digest per forget record
    counts: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)  # records per part of the payload
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # aggregate figures of the verification
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(200))  # the worker holding it (set by the worker)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Event(Base):
    """One audit event; rows are only ever inserted, through `audit.append_event`.

    hash = sha256(prev_hash ‖ canonical JSON of {request_id, at, actor, type, details}); prev_hash is
    unique, so two writers can never both extend the same event (the chain cannot fork).
    """

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40))
    details: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
