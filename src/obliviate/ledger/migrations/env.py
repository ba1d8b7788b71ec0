"""Alembic environment of the ledger: always given a live connection by `db.open_ledger`.

Run programmatically only (there is no alembic.ini): `open_ledger` puts the connection it holds in
`config.attributes["connection"]`, inside the transaction (and, on PostgreSQL, the advisory lock)
it opened, so two processes opening one fresh database cannot both create the tables.
"""

from alembic import context

from obliviate.ledger.db import VERSION_TABLE
from obliviate.ledger.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the ledger migrations run through obliviate.ledger.open_ledger, which passes a connection")
context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE,
                  render_as_batch=True)  # SQLite alters tables by copying them
with context.begin_transaction():
    context.run_migrations()
