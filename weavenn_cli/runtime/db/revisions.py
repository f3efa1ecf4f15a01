"""Whether a database is at the head revision, answered without alembic.

A command that only needs that answer (backfill, verify) would otherwise import alembic and
load every revision script as a module before doing any work: a fixed cost paid on each run.
Each revision file declares `revision = "NNN"` and `down_revision = ...` on lines of their
own (alembic's template, kept by every file in versions/); the heads are the revisions no
other one comes down from. tests/test_migrations.py checks the answer agrees with alembic's.
"""

from __future__ import annotations

import ast
import functools
import re

from sqlalchemy import exc, pool

from weavenn_cli.runtime.db.engine import connection_error, describe_url, make_engine
from weavenn_cli.runtime.errors import DatabaseError
from weavenn_cli.runtime.resources import migrations_dir

_DECLARATION = re.compile(r"^(revision|down_revision)\s*(?::[^=]+)?=\s*(.+?)\s*$", re.MULTILINE)


@functools.cache
def head_revisions() -> tuple[str, ...]:
    """The revisions of versions/ that no other revision comes down from."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((migrations_dir() / "versions").glob("*.py")):
        declared = dict(_DECLARATION.findall(path.read_text(encoding="utf-8")))
        if "revision" not in declared:
            continue
        revisions.add(str(ast.literal_eval(declared["revision"])))
        down = ast.literal_eval(declared.get("down_revision", "None"))
        parents.update([down] if isinstance(down, str) else down or ())
    return tuple(sorted(revisions - parents))


def current_revisions(database_url: str) -> list[str]:
    """The revisions recorded in the database's alembic_version (none when never migrated)."""
    engine = make_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            if not engine.dialect.has_table(connection, "alembic_version"):
                return []
            rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            return sorted(str(row[0]) for row in rows)
    except exc.OperationalError as error:
        if "connect" in str(error).lower() or "unable to open" in str(error).lower():
            raise connection_error(engine.url, error) from None
        raise DatabaseError(
            f"cannot read the revision of {describe_url(database_url)}: {error.orig}"
        ) from None
    finally:
        engine.dispose()
