"""Sessions on a database that holds the vault tables."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from weavenn_cli.runtime import schema
from weavenn_cli.runtime.db.engine import describe_url, make_engine, session_factory
from weavenn_cli.runtime.errors import DatabaseError


def vault_sessions(database_url: str) -> sessionmaker[Session]:
    """A session factory, once the database is known to be at the schema head."""
    current = schema.current_revisions(database_url)
    heads = schema.head_revisions()
    if set(current) != set(heads):
        raise DatabaseError(
            f"database {describe_url(database_url)} is at {', '.join(current) or 'no revision'}, "
            f"not at head {', '.join(heads)}: run `weavenn migrate db` first"
        )
    return session_factory(make_engine(database_url))
