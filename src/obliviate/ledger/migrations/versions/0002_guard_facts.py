"""Keep a request's guard facts in their own column, so the guard reads them without the records.

Before this revision the guard facts were derived from the payload: each read of the protected
facts loaded every pending request's full records (about 1,500 per tiny request), so it grew with
the ledger. Now `requests.guard_facts` holds them from submission until the request no longer
needs a guard, and the payload holds only the records ({"request", "data"}) or nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from obliviate.ledger.purge import filter_facts

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True)
requests = sa.table("requests", sa.column("id", sa.Integer()), sa.column("payload", JSON),
                    sa.column("guard_facts", JSON))


def upgrade() -> None:
    op.add_column("requests", sa.Column("guard_facts", JSON, nullable=True))
    conn = op.get_bind()
    for rid, payload in conn.execute(sa.select(requests.c.id, requests.c.payload).where(
            requests.c.payload.is_not(None))).all():
        if "filter" in payload:  # trimmed to its guard facts: the payload held nothing else
            conn.execute(requests.update().where(requests.c.id == rid).values(guard_facts=payload["filter"],
                                                                              payload=None))
        elif "data" in payload:
            conn.execute(requests.update().where(requests.c.id == rid).values(
                guard_facts=filter_facts(payload["data"])))


def downgrade() -> None:
    conn = op.get_bind()
    for rid, payload, facts in conn.execute(sa.select(requests.c.id, requests.c.payload, requests.c.guard_facts)
                                            .where(requests.c.guard_facts.is_not(None))).all():
        if payload is None:
            conn.execute(requests.update().where(requests.c.id == rid).values(payload={"filter": facts}))
    # Not a batch copy: SQLite (3.35+) drops a column in place, and copying the table would break
    # the events' foreign keys.
    op.drop_column("requests", "guard_facts")
