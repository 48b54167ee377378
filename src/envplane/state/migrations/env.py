"""Alembic environment: always run online, on the connection envplane hands over.

`envplane.state.db` opens the connection (and takes the migration lock) and passes it
in `config.attributes["connection"]`; there is no alembic.ini and no URL here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from envplane.state.models import Base


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("envplane migrations run through envplane.state.db.open_store only")
run_migrations(connection)
