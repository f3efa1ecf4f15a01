"""Dead letters of both transports: the `dead_letters` table, listed, shown, replayed, purged."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, exc, func, select
from sqlalchemy.orm import Session

from weavenn_cli.runtime.bus import transport as bus
from weavenn_cli.runtime.bus.outbox import dialect_insert
from weavenn_cli.runtime.db.engine import connection_error, session_factory, session_scope
from weavenn_cli.runtime.db.models import DeadLetter
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.errors import UsageError


def record(
    session: Session,
    message: bus.InboundMessage,
    *,
    key: str,
    error: str,
    attempts: int,
    queue: str | None,
    consumer: str | None,
    failed_at: datetime | None = None,
) -> bool:
    """Store a dead letter; False when one with `key` is already there (moved twice)."""
    statement = (
        dialect_insert(session)(DeadLetter)
        .values(
            key=key,
            queue=queue,
            consumer=consumer,
            message_id=message.message_id,
            routing_key=message.routing_key,
            body=message.body,
            headers=dict(message.headers) or None,
            correlation_id=message.correlation_id,
            error=error,
            attempts=attempts,
            failed_at=failed_at or utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(DeadLetter.id)
    )
    return session.execute(statement).first() is not None


def fallback_key(*parts: object) -> str:
    """A key for a dead letter that arrived without one (dead-lettered by the broker itself)."""
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()[:40]


@dataclass(frozen=True)
class ReplayResult:
    replayed: list[int]
    missing: list[int]


class DeadLetters:
    """The dead letters table as the `weavenn dlq` commands use it."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = session_factory(engine)
        self._url = engine.url

    def list(self, queue: str | None = None, limit: int | None = None) -> list[DeadLetter]:
        query = select(DeadLetter).order_by(DeadLetter.id)
        if queue:
            query = query.where(DeadLetter.queue == queue)
        if limit:
            query = query.limit(limit)
        with self._session() as session:
            return list(session.scalars(query))

    def get(self, dead_letter_id: int) -> DeadLetter:
        with self._session() as session:
            row = session.get(DeadLetter, dead_letter_id)
        if row is None:
            raise UsageError(
                f"no dead letter with id {dead_letter_id}: see `weavenn dlq list` for the ids"
            )
        return row

    def counts_by_queue(self) -> dict[str | None, int]:
        query = select(DeadLetter.queue, func.count()).group_by(DeadLetter.queue)
        with self._session() as session:
            return {queue: count for queue, count in session.execute(query)}

    def replay(
        self,
        transport: bus.Transport,
        ids: Sequence[int] | None = None,
        queue: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> ReplayResult:
        """Send dead letters back to the queue they died in, as a first attempt.

        The row is deleted only after the transport confirmed the message: a crash in between
        replays it twice, and the consumer's inbox skips the second copy.
        """
        query = select(DeadLetter).order_by(DeadLetter.id)
        if ids is not None:
            query = query.where(DeadLetter.id.in_(list(ids)))
        if queue:
            query = query.where(DeadLetter.queue == queue)
        with self._session() as session:
            rows = list(session.scalars(query))
        publisher: bus.Publisher | None = None
        replayed = []
        try:
            for row in rows:
                message = _replayable(row)
                if transport.topology.has_queue(row.queue):
                    transport.send_to_queue(str(row.queue), message)
                else:
                    # Origin unknown (dead-lettered outside weavenn): route it by its key.
                    publisher = publisher or transport.publisher()
                    refused = publisher.publish([message]).failed
                    if refused:
                        raise bus.BrokerUnavailable(
                            f"dead letter {row.id} was refused by the broker: "
                            f"{next(iter(refused.values()))}"
                        )
                with self._session() as session:
                    session.execute(delete(DeadLetter).where(DeadLetter.id == row.id))
                replayed.append(row.id)
                if on_progress is not None:
                    on_progress(len(replayed), len(rows))
        finally:
            if publisher is not None:
                publisher.close()
        found = {row.id for row in rows}
        missing = sorted(set(ids) - found) if ids is not None else []
        return ReplayResult(replayed=replayed, missing=missing)

    def purge(self, ids: Sequence[int] | None = None, queue: str | None = None) -> int:
        statement = delete(DeadLetter)
        if ids is not None:
            statement = statement.where(DeadLetter.id.in_(list(ids)))
        if queue:
            statement = statement.where(DeadLetter.queue == queue)
        with self._session() as session:
            return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with session_scope(self._sessions) as session:
                yield session
        except exc.OperationalError as error:
            raise connection_error(self._url, error) from None


def _replayable(row: DeadLetter) -> bus.OutgoingMessage:
    dropped = (
        bus.ATTEMPT,
        bus.ERROR,
        bus.QUEUE,
        bus.CONSUMER,
        bus.FAILED_AT,
        bus.DEAD_LETTER_ID,
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
    )
    headers: dict[str, Any] = {
        key: value for key, value in (row.headers or {}).items() if key not in dropped
    }
    headers[bus.ROUTING_KEY] = row.routing_key
    return bus.OutgoingMessage(
        message_id=row.message_id or fallback_key(row.key),
        routing_key=row.routing_key,
        body=row.body,
        headers=headers,
        correlation_id=row.correlation_id,
    )
