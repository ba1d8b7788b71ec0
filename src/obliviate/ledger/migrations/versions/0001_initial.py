"""The first ledger schema: requests, events, model_versions and ledger_meta (with a fresh salt).

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    meta = op.create_table(
        "ledger_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_ledger_meta"))
    # One random salt per ledger keys every payload digest (`purge.py`); it never leaves the database.
    op.bulk_insert(meta, [{"key": "salt", "value": secrets.token_hex(32)}])

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        _time("created_at"),
        sa.Column("request_ids", JSON, nullable=False),
        sa.Column("evidence_path", sa.Text(), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["model_versions.id"],
                                name="fk_model_versions_parent_id_model_versions"),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"))

    op.create_table(
        "requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("external_ref", sa.String(200), nullable=True),
        sa.Column("subject", sa.String(500), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("requester", sa.String(500), nullable=True),
        sa.Column("legal_basis", sa.String(500), nullable=True),
        _time("received_at"),
        _time("due_by", nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("keep_filter_after_removal", sa.Boolean(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("payload", JSON, nullable=True),
        sa.Column("payload_digest", sa.String(64), nullable=False),
        sa.Column("digests", JSON, nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.Column("evidence", JSON, nullable=True),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _time("updated_at"),
        _time("purged_at", nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        _time("claimed_at", nullable=True),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name="fk_requests_model_version_id_model_versions"),
        sa.PrimaryKeyConstraint("id", name="pk_requests"),
        sa.UniqueConstraint("idempotency_key", name="uq_requests_idempotency_key"))
    op.create_index("ix_requests_status", "requests", ["status"])

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        _time("at"),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], name="fk_events_request_id_requests"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("prev_hash", name="uq_events_prev_hash"),
        sa.UniqueConstraint("hash", name="uq_events_hash"))
    op.create_index("ix_events_request_id", "events", ["request_id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("requests")
    op.drop_table("model_versions")
    op.drop_table("ledger_meta")
