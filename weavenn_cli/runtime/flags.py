"""Runtime flags: switches operators flip while every process keeps running.

A flag lives in the `runtime_flags` table of the primary database. Each process caches what
it read for a short time, so a flip reaches every replica within `ttl` seconds plus one read,
without a restart and without a query on every request.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import sqlalchemy as sa

from weavenn_cli.runtime.db.models import RuntimeFlag
from weavenn_cli.runtime.db.types import utcnow

FLAGS = cast(sa.Table, RuntimeFlag.__table__)
MISSING = object()


def read_flag(connection: sa.Connection, name: str) -> Any:
    """The stored value of `name`, or MISSING when the table has none."""
    row = connection.execute(sa.select(FLAGS.c.value).where(FLAGS.c.name == name)).first()
    return MISSING if row is None else row[0]


def write_flag(connection: sa.Connection, name: str, value: Any) -> None:
    from weavenn_cli.runtime.migration.access import upsert_statement

    statement = upsert_statement(connection.engine, FLAGS, "replace")
    connection.execute(statement, {"name": name, "value": value, "updated_at": utcnow()})


class CachedFlag:
    """One flag as a running process sees it: re-read at most every `ttl` seconds."""

    def __init__(self, engine: sa.Engine, name: str, default: Any, ttl: float = 1.0) -> None:
        self.engine = engine
        self.name = name
        self.default = default
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: Any = default
        self._read_at = -float("inf")

    def get(self) -> Any:
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl:
                self._refresh()
            return self._value

    def _refresh(self) -> None:
        try:
            with self.engine.connect() as connection:
                stored = read_flag(connection, self.name)
        except sa.exc.DBAPIError:
            # The primary is failing: the caller's own write will say so. Keep the last value.
            self._read_at = time.monotonic()
            return
        self._value = self.default if stored is MISSING else stored
        self._read_at = time.monotonic()
