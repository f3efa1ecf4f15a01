"""A lease in the database: a job that only one process may run at a time.

The outbox relay runs inside `weavenn watch`, `weavenn relay` and the API server; two of them
on one outbox would publish the same rows side by side (duplicates, and events of one path
out of order). Each takes the lease before publishing and renews it as it goes; the others
wait, and take over once the holder stops (it releases the lease) or dies (it expires).

Taking and renewing is one conditional upsert, so two processes cannot both win it; it works
the same on PostgreSQL and SQLite. Expiry compares the clocks of the processes: keep the
machines' clocks in sync (NTP), as for every other timestamp here.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, case, delete, select
from sqlalchemy.orm import Session

from weavenn_cli.runtime.bus.outbox import dialect_insert
from weavenn_cli.runtime.db.engine import session_factory, session_scope
from weavenn_cli.runtime.db.models import Lease
from weavenn_cli.runtime.db.types import utcnow

RELAY_LEASE = "outbox-relay"


@dataclass(frozen=True)
class LeaseHolder:
    holder: str
    expires_at: datetime


def new_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DatabaseLease:
    """The lease `name`, as process `holder` sees it."""

    def __init__(
        self, engine: Engine, name: str, *, ttl: timedelta, holder: str | None = None
    ) -> None:
        self._sessions = session_factory(engine)
        self.name = name
        self.ttl = ttl
        self.holder = holder or new_holder_id()

    def acquire(self) -> bool:
        """Take or renew the lease; False while another holder's lease runs."""
        now = utcnow()
        values = {
            "name": self.name,
            "holder": self.holder,
            "acquired_at": now,
            "expires_at": now + self.ttl,
        }
        with session_scope(self._sessions) as session:
            statement = _upsert(session)
            return session.execute(statement, values | {"now": now}).first() is not None

    def release(self) -> None:
        """Give the lease up now (the next process need not wait for it to expire)."""
        with session_scope(self._sessions) as session:
            session.execute(
                delete(Lease).where(Lease.name == self.name, Lease.holder == self.holder)
            )

    def current(self) -> LeaseHolder | None:
        """Who holds the lease, if anyone does now."""
        with self._sessions() as session:
            row = session.execute(
                select(Lease.holder, Lease.expires_at).where(Lease.name == self.name)
            ).first()
        if row is None or row.expires_at <= utcnow():
            return None
        return LeaseHolder(row.holder, row.expires_at)


def _upsert(session: Session) -> Any:
    table = Lease.__table__
    statement = dialect_insert(session)(table)
    renewing = table.c.holder == statement.excluded.holder
    expired = table.c.expires_at <= bindparam("now")
    return statement.on_conflict_do_update(
        index_elements=["name"],
        set_={
            "holder": statement.excluded.holder,
            # A renewal keeps the time the lease was taken.
            "acquired_at": case(
                (renewing, table.c.acquired_at), else_=statement.excluded.acquired_at
            ),
            "expires_at": statement.excluded.expires_at,
        },
        where=renewing | expired,
    ).returning(table.c.holder)
