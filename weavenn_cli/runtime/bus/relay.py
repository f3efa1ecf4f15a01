"""The outbox relay: publishes outbox rows in id order and marks them once confirmed.

Events reach the outbox in the transaction of their cause; the relay takes a window of
pending rows, publishes them all, waits for the transport's confirms, and marks only the
confirmed ones. A broker outage delays events, never loses them: the relay backs off,
reconnects and carries on where the last confirmed row left off. It runs as `weavenn relay`
or inside another process (the watcher, the API server) as a thread: `start()`, `wake()`
after committing an event, `stop()`.

Only one relay publishes an outbox at a time: each holds a lease in the database (see
`lease.py`) and renews it every cycle; the others wait and take over when it is released or
expires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, Row, delete, exc, select, update

from weavenn_cli.runtime.bus.backoff import Backoff
from weavenn_cli.runtime.bus.lease import RELAY_LEASE, DatabaseLease
from weavenn_cli.runtime.bus.transport import (
    BrokerUnavailable,
    OutgoingMessage,
    Publisher,
    PublishResult,
)
from weavenn_cli.runtime.db.engine import reader_engine, session_factory, session_scope
from weavenn_cli.runtime.db.models import OutboxMessage
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.errors import WeavennError

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 500
DEFAULT_LEASE_SECONDS = 15.0
PRUNE_EVERY_SECONDS = 60.0
PRUNE_CHUNK = 5000


@dataclass
class RelayStats:
    published: int = 0
    failed: int = 0
    pruned: int = 0
    outages: int = 0


class Relay:
    """Moves the outbox to the transport; safe to stop at any moment."""

    def __init__(
        self,
        engine: Engine,
        open_publisher: Callable[[], Publisher],
        *,
        window: int = DEFAULT_WINDOW,
        retention: timedelta = timedelta(hours=24),
        poll_interval: float = 0.25,
        backoff: Backoff | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self._lease = DatabaseLease(engine, RELAY_LEASE, ttl=timedelta(seconds=lease_seconds))
        self._lease_renewed_at: float | None = None  # monotonic time of the last renewal
        self._waiting_for: str | None = None  # the other holder we last logged
        self._sessions = session_factory(engine)
        self._reads = session_factory(reader_engine(engine))
        self._open_publisher = open_publisher
        self._window = window
        self._retention = retention
        self._poll_interval = poll_interval
        self._backoff = backoff or Backoff()
        self._publisher: Publisher | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self.stats = RelayStats()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run in a background thread of this process."""
        self._thread = threading.Thread(target=self.run, name="weavenn-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wake(self) -> None:
        """Publish now instead of at the next poll (call after committing an outbox row)."""
        self._wake.set()

    @property
    def holds_lease(self) -> bool:
        return self._lease_renewed_at is not None

    def run(self) -> None:
        """Publish until stopped; broker and database outages are waited out, and so is
        another relay holding the outbox's lease."""
        try:
            while not self._stop.is_set():
                if not self._hold_lease():
                    self._stop.wait(self._lease.ttl.total_seconds() / 3)
                    continue
                if self._cycle() == 0:
                    self._wake.wait(self._poll_interval)
                    self._wake.clear()
        finally:
            self._close_publisher()
            self._release_lease()

    def drain(self) -> int:
        """Publish everything pending now, then return how many were published (`--once`)."""
        if not self._hold_lease():
            current = self._lease.current()
            who = f" ({current.holder})" if current else ""
            raise WeavennError(
                f"another relay{who} is publishing this outbox: it holds the relay lease; "
                "stop it first, or let it do the work"
            )
        total = 0
        try:
            while (published := self.publish_pending()) > 0:
                total += published
                self._hold_lease()
        finally:
            self._close_publisher()
            self._release_lease()
        return total

    # -- the lease ----------------------------------------------------------------------------

    def _hold_lease(self) -> bool:
        """Take or renew the relay lease (renewed every third of its time); False while
        another relay holds it."""
        ttl = self._lease.ttl.total_seconds()
        renewed = self._lease_renewed_at
        if renewed is not None and time.monotonic() - renewed < ttl / 3:
            return True
        try:
            held = self._lease.acquire()
        except (exc.OperationalError, exc.InterfaceError) as error:
            self._lease_renewed_at = None
            self._outage(f"cannot take the relay lease: {_first_line(error)}")
            return False
        if not held:
            self._lease_renewed_at = None
            self._log_waiting()
            return False
        if renewed is None:
            log.info("relay: took the outbox lease (%s)", self._lease.holder)
        self._waiting_for = None
        self._lease_renewed_at = time.monotonic()
        return True

    def _log_waiting(self) -> None:
        current = self._lease.current()
        holder = current.holder if current else "another relay"
        if holder != self._waiting_for:
            log.info("relay: %s publishes this outbox; waiting to take over", holder)
            self._waiting_for = holder

    def _release_lease(self) -> None:
        if self._lease_renewed_at is None:
            return
        self._lease_renewed_at = None
        try:
            self._lease.release()
        except exc.DBAPIError as error:
            log.warning("relay: could not release the lease (it expires): %s", _first_line(error))

    # -- one cycle ----------------------------------------------------------------------------

    def _cycle(self) -> int:
        try:
            published = self.publish_pending()
            self._prune_if_due()
        except BrokerUnavailable as error:
            self._outage(f"broker unavailable: {error.message}")
            return 0
        except (exc.OperationalError, exc.InterfaceError) as error:
            self._outage(f"database unavailable: {_first_line(error)}")
            return 0
        self._backoff.reset()
        return published

    def _outage(self, reason: str) -> None:
        self.stats.outages += 1
        self._close_publisher()
        delay = self._backoff.next_delay()
        log.warning("relay: %s; retrying in %.1fs", reason, delay)
        self._stop.wait(delay)

    def publish_pending(self) -> int:
        """Publish one window of pending rows; how many the transport confirmed."""
        with self._reads() as session:
            rows = session.execute(_PENDING.limit(self._window)).all()
        if not rows:
            return 0
        if self._publisher is None:
            self._publisher = self._open_publisher()
        result = self._publisher.publish([_outgoing(row) for row in rows])
        self._record(rows, result)
        if result.failed and not result.confirmed:
            raise BrokerUnavailable(next(iter(result.failed.values())))
        return len(result.confirmed)

    def _record(self, rows: Sequence[Row[Any]], result: PublishResult) -> None:
        confirmed = set(result.confirmed)
        ids = [row.id for row in rows if row.message_id in confirmed]
        with session_scope(self._sessions) as session:
            if ids:
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids))
                    .values(published_at=utcnow(), attempts=OutboxMessage.attempts + 1)
                )
            for row in rows:
                if row.message_id in result.failed:
                    session.execute(
                        update(OutboxMessage)
                        .where(OutboxMessage.id == row.id)
                        .values(
                            attempts=OutboxMessage.attempts + 1,
                            last_error=result.failed[row.message_id][:2000],
                        )
                    )
        self.stats.published += len(ids)
        self.stats.failed += len(result.failed)

    def _prune_if_due(self) -> None:
        if time.monotonic() - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = time.monotonic()
        self.stats.pruned += self.prune()

    def prune(self) -> int:
        """Delete published rows older than the retention, a chunk at a time."""
        cutoff = utcnow() - self._retention
        pruned = 0
        while True:
            with session_scope(self._sessions) as session:
                old = (
                    select(OutboxMessage.id)
                    .where(OutboxMessage.published_at < cutoff)
                    .limit(PRUNE_CHUNK)
                    .scalar_subquery()
                )
                deleted = session.execute(
                    delete(OutboxMessage).where(OutboxMessage.id.in_(old))
                ).rowcount  # type: ignore[attr-defined]
            pruned += int(deleted)
            if deleted < PRUNE_CHUNK:
                return pruned

    def _close_publisher(self) -> None:
        if self._publisher is not None:
            try:
                self._publisher.close()
            finally:
                self._publisher = None


# The columns a message needs, not ORM objects: the relay only reads them once.
_PENDING = (
    select(
        OutboxMessage.id,
        OutboxMessage.message_id,
        OutboxMessage.routing_key,
        OutboxMessage.payload,
        OutboxMessage.headers,
        OutboxMessage.correlation_id,
        OutboxMessage.created_at,
    )
    .where(OutboxMessage.published_at.is_(None))
    .order_by(OutboxMessage.id)
)


def _outgoing(row: Row[Any]) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=row.message_id,
        routing_key=row.routing_key,
        body=row.payload.encode(),
        headers=row.headers or {},
        correlation_id=row.correlation_id or row.message_id,
        timestamp=row.created_at,
    )


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", error)).strip()
    return text.splitlines()[0] if text else type(error).__name__
