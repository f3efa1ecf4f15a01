"""The consumer runner: the one loop that runs every consumer, on either transport.

For each message it decodes the JSON (a malformed message goes straight to the dead letters
with the reason), skips a message id already in the consumer's inbox, applies the effect and
records the id in the inbox in one transaction, commits, and only then acknowledges. A failed
message waits in the transport for the next delay of the retry schedule, then is
dead-lettered with the error and its attempt count. A consumer that implements
`handle_batch` gets its messages in batches (flushed when full, or when none arrived for a
while) and they are acked after the batch's effect committed.

A message the broker redelivers (its consumer died or lost the connection before settling
it) is applied alone, after one more delivery is counted for it in the database in a
transaction of its own: a message that kills the process each time it is handled never
settles, so no retry count moves, but this one does, and past the retry budget the message
is dead-lettered instead of being handled again. Inbox entries (and delivery counts) older
than the inbox retention are pruned as the runner goes.

Handlers run on a worker thread while the runner keeps the transport alive (heartbeats,
leases). An unreachable database is waited out: the messages in hand go back to the queue,
the runner pauses and reconnects, and no retry is spent. On stop (SIGTERM) it takes no more
messages, finishes the batch in hand within the drain timeout, and returns.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from pydantic import ValidationError
from sqlalchemy import Engine, exc
from sqlalchemy.orm import Session

from weavenn_cli.runtime.bus import outbox
from weavenn_cli.runtime.bus.backoff import Backoff
from weavenn_cli.runtime.bus.transport import (
    BrokerUnavailable,
    ConsumerChannel,
    DeadLetterInfo,
    InboundMessage,
    Transport,
)
from weavenn_cli.runtime.consumers.base import (
    BatchConsumer,
    Consumer,
    Delivery,
    PermanentError,
    RetryLater,
)
from weavenn_cli.runtime.consumers.metrics import RunnerMetrics
from weavenn_cli.runtime.db.engine import is_reachable, session_factory, session_scope
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.errors import ConfigError
from weavenn_cli.runtime.events import model_for

log = logging.getLogger(__name__)

RECEIVE_TIMEOUT_SECONDS = 0.5
DEFAULT_PREFETCH = 50
DEFAULT_DRAIN_TIMEOUT = 30.0
DEFAULT_INBOX_RETENTION = timedelta(hours=168)
PRUNE_EVERY_SECONDS = 300.0
PRUNE_CHUNK = 5000


class DatabaseUnavailable(Exception):
    """The consumer's database does not answer: pause instead of spending retries."""


@dataclass
class _Pending:
    message: InboundMessage
    delivery: Delivery


@dataclass
class _Outcome:
    """What one transaction did to a batch: acks to send, failures to retry or dead-letter."""

    settled: list[InboundMessage] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    failed: list[tuple[InboundMessage, BaseException]] = field(default_factory=list)
    refused: list[tuple[InboundMessage, str]] = field(default_factory=list)


class Runner:
    """Runs one consumer until `stop()`; reconnects to the transport and the database."""

    def __init__(
        self,
        consumer: Consumer | BatchConsumer,
        transport: Transport,
        engine: Engine,
        *,
        prefetch: int = DEFAULT_PREFETCH,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        metrics: RunnerMetrics | None = None,
        backoff: Backoff | None = None,
        inbox_retention: timedelta = DEFAULT_INBOX_RETENTION,
    ) -> None:
        self.consumer = consumer
        self._transport = transport
        self._engine = engine
        self._sessions = session_factory(engine)
        # A consumer with `handle_batch` is a batch consumer (see base.BatchConsumer).
        self._batch_size = (
            max(1, int(getattr(consumer, "batch_size", 1)))
            if callable(getattr(consumer, "handle_batch", None))
            else 0
        )
        # Room for the next batch to arrive while one is being applied.
        self._prefetch = max(prefetch, 2 * self._batch_size)
        self._drain_timeout = drain_timeout
        self.metrics = metrics or RunnerMetrics(consumer.name)
        self._backoff = backoff or Backoff()
        self._stop = threading.Event()
        self._stop_deadline: float | None = None
        self._pending: list[_Pending] = []
        self._inbox_retention = inbox_retention
        self._last_prune = -float("inf")
        # Redeliveries a message may get without ever settling before it is dead-lettered.
        self._max_unsettled = transport.topology.max_attempts
        self._check_topology()

    # -- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking messages; finish the batch in hand within the drain timeout."""
        if not self._stop.is_set():
            self._stop_deadline = time.monotonic() + self._drain_timeout
            self._stop.set()

    def run(self) -> None:
        try:
            self._run_until_stopped()
        finally:
            # A consumer with work of its own in the background (git-auto-commit's pushes)
            # finishes it now.
            close = getattr(self.consumer, "close", None)
            if callable(close):
                close()

    def _run_until_stopped(self) -> None:
        while not self._stop.is_set():
            channel = self._connect()
            if channel is None:
                return
            wait_out: Callable[[], None] | None = None
            try:
                self._consume(channel)
            except BrokerUnavailable as error:
                # Unacked messages return to the queue when the broker drops the connection.
                lost = f"lost {self._transport.describe()}: {error.message}"
                wait_out = partial(self._pause, lost)
            except DatabaseUnavailable as error:
                self._requeue_quietly(channel, [p.message for p in self._pending])
                wait_out = partial(self._wait_for_database, str(error))
            finally:
                self._pending.clear()
                channel.close()
            if wait_out is not None:
                wait_out()

    def _connect(self) -> ConsumerChannel | None:
        while not self._stop.is_set():
            try:
                channel = self._transport.consumer(
                    self.consumer.queue, prefetch=self._prefetch, consumer_name=self.consumer.name
                )
            except BrokerUnavailable as error:
                self._pause(f"cannot reach {self._transport.describe()}: {error.message}")
                continue
            self._backoff.reset()
            log.info(
                "%s consuming %s on %s (prefetch %d)",
                self.consumer.name,
                self.consumer.queue,
                self._transport.describe(),
                self._prefetch,
            )
            return channel
        return None

    def _pause(self, reason: str) -> None:
        delay = self._backoff.next_delay()
        log.warning("%s; retrying in %.1fs", reason, delay)
        self._stop.wait(delay)

    def _wait_for_database(self, reason: str) -> None:
        while not self._stop.is_set():
            delay = self._backoff.next_delay()
            log.warning("database unreachable (%s); pausing %.1fs", reason, delay)
            self._stop.wait(delay)
            if is_reachable(self._engine):
                log.info("database reachable again; resuming")
                self._backoff.reset()
                return

    # -- the loop -----------------------------------------------------------------------------

    def _consume(self, channel: ConsumerChannel) -> None:
        last_arrival = time.monotonic()
        while not self._stop.is_set():
            # A batch never outgrows batch_size; the rest of the prefetch waits in the channel.
            room = max(1, (self._batch_size or self._prefetch) - len(self._pending))
            messages = channel.receive(room, self._receive_timeout(last_arrival))
            if messages:
                last_arrival = time.monotonic()
                self._take(channel, messages)
            if self._flush_due(last_arrival):
                self._flush(channel)
            self._prune_inbox_if_due()
        channel.cancel()
        if self._pending:
            self._flush(channel)

    def _receive_timeout(self, last_arrival: float) -> float:
        if not (self._batch_size and self._pending):
            return RECEIVE_TIMEOUT_SECONDS
        idle_left = last_arrival + self._idle_seconds() - time.monotonic()
        return max(0.0, min(RECEIVE_TIMEOUT_SECONDS, idle_left))

    def _idle_seconds(self) -> float:
        return float(getattr(self.consumer, "batch_idle_seconds", 0.0))

    def _flush_due(self, last_arrival: float) -> bool:
        if not self._pending:
            return False
        if not self._batch_size:
            return True
        full = len(self._pending) >= self._batch_size
        return full or time.monotonic() - last_arrival >= self._idle_seconds()

    def _take(self, channel: ConsumerChannel, messages: Sequence[InboundMessage]) -> None:
        for message in messages:
            delivery = _decode(message)
            if isinstance(delivery, str):
                log.warning(
                    "dead-lettering a malformed message from %s: %s", message.queue, delivery
                )
                self._dead_letter(channel, message, delivery)
            else:
                self._pending.append(_Pending(message, delivery))

    def _flush(self, channel: ConsumerChannel) -> None:
        batch, self._pending = self._pending, []
        # Redelivered messages go one at a time: if one of them is what killed the last
        # consumer, it must not take a batch of innocent messages down with it again.
        jobs: list[tuple[list[_Pending], Callable[[], _Outcome]]] = [
            ([p], partial(self._apply_redelivered, p)) for p in batch if p.message.redelivered
        ]
        first = [p for p in batch if not p.message.redelivered]
        if first and getattr(self.consumer, "commit_each", False):
            # Its effects leave the database (a note written, a webhook called): each message
            # commits before the next starts, so what others see outside follows the records.
            jobs.extend(([p], partial(self._apply, [p])) for p in first)
        elif first:
            jobs.append((first, partial(self._apply, first)))
        for number, (messages, work) in enumerate(jobs):
            if not self._run_job(channel, messages, work):
                rest = [p.message for later, _ in jobs[number + 1 :] for p in later]
                self._requeue_quietly(channel, rest)
                return

    def _run_job(
        self, channel: ConsumerChannel, batch: list[_Pending], work: Callable[[], _Outcome]
    ) -> bool:
        """Apply on the worker thread, keep the transport alive, settle; False when the
        drain timeout sent the batch back to the queue."""
        job = _Job(work, on_done=channel.wake)
        try:
            while not job.done.is_set():
                if self._stop_deadline is not None and time.monotonic() > self._stop_deadline:
                    log.warning("drain timeout: %d messages go back to the queue", len(batch))
                    self._requeue_quietly(channel, [p.message for p in batch])
                    return False
                channel.keep_alive(RECEIVE_TIMEOUT_SECONDS)
        except BrokerUnavailable:
            # The broker redelivers the batch; let this transaction end before reconnecting,
            # and the inbox will skip whatever it committed.
            job.done.wait(self._drain_timeout)
            raise
        if isinstance(job.error, DatabaseUnavailable):
            self._requeue_quietly(channel, [p.message for p in batch])
            raise job.error
        if job.error is not None:
            raise job.error
        self._settle(channel, job.result)
        return True

    # -- applying (worker thread) -------------------------------------------------------------

    def _apply(self, batch: Sequence[_Pending], *, one_by_one: bool = False) -> _Outcome:
        outcome = _Outcome()
        try:
            with session_scope(self._sessions) as session:
                fresh = self._skip_processed(session, batch, outcome)
                failures = self._handle(session, fresh, one_by_one=one_by_one)
                for pending in fresh:
                    if pending.delivery.message_id in failures:
                        outcome.failed.append(
                            (pending.message, failures[pending.delivery.message_id])
                        )
                    else:
                        outbox.record_processed(
                            session, self.consumer.name, pending.delivery.message_id
                        )
                        outcome.settled.append(pending.message)
                        outcome.applied += 1
        except DatabaseUnavailable:
            raise
        except Exception as error:
            _raise_if_database_down(error, self._engine)
            # The transaction rolled back: nothing in it happened.
            log.warning("%s: transaction failed: %s", self.consumer.name, _describe(error))
            if not one_by_one and len(batch) > 1 and self._can_handle_each():
                # One bad message must not sink the others: apply them one at a time.
                return self._apply(batch, one_by_one=True)
            return _Outcome(failed=[(p.message, error) for p in batch])
        return outcome

    def _apply_redelivered(self, pending: _Pending) -> _Outcome:
        """Count one more delivery (committed before handling), then apply it alone, or
        dead-letter it when it was redelivered more often than the retry budget allows."""
        message_id = pending.delivery.message_id
        try:
            with session_scope(self._sessions) as session:
                deliveries = outbox.count_delivery(session, self.consumer.name, message_id)
        except Exception as error:
            _raise_if_database_down(error, self._engine)
            return _Outcome(failed=[(pending.message, error)])
        if deliveries > self._max_unsettled:
            reason = (
                f"redelivered {deliveries} times without being settled: handling it stops "
                "the consumer (killed, crashed, out of memory?)"
            )
            return _Outcome(refused=[(pending.message, reason)])
        return self._apply([pending])

    def _can_handle_each(self) -> bool:
        return callable(getattr(self.consumer, "handle", None))

    def _skip_processed(
        self, session: Session, batch: Sequence[_Pending], outcome: _Outcome
    ) -> list[_Pending]:
        ids = [p.delivery.message_id for p in batch]
        seen = outbox.processed_among(session, self.consumer.name, ids)
        fresh = []
        for pending in batch:
            if pending.delivery.message_id in seen:
                outcome.settled.append(pending.message)
                outcome.duplicates += 1
            else:
                seen.add(pending.delivery.message_id)
                fresh.append(pending)
        return fresh

    def _handle(
        self, session: Session, fresh: Sequence[_Pending], *, one_by_one: bool
    ) -> Mapping[str, BaseException]:
        if not fresh:
            return {}
        if self._batch_size and not one_by_one:
            consumer: BatchConsumer = self.consumer  # type: ignore[assignment]
            started = time.perf_counter()
            try:
                failures = consumer.handle_batch(session, [p.delivery for p in fresh])
            finally:
                self.metrics.observe_latency(time.perf_counter() - started)
            return dict(failures)
        return self._handle_each(session, fresh)

    def _handle_each(self, session: Session, fresh: Sequence[_Pending]) -> dict[str, BaseException]:
        """One savepoint per message: a failing message does not undo the others."""
        handle: Callable[[Session, Delivery], None] = self.consumer.handle  # type: ignore[union-attr]
        failures: dict[str, BaseException] = {}
        for pending in fresh:
            started = time.perf_counter()
            try:
                with session.begin_nested():
                    handle(session, pending.delivery)
            except Exception as error:
                _raise_if_database_down(error, self._engine)
                failures[pending.delivery.message_id] = error
            finally:
                self.metrics.observe_latency(time.perf_counter() - started)
        return failures

    # -- settling (transport thread) ----------------------------------------------------------

    def _settle(self, channel: ConsumerChannel, outcome: _Outcome) -> None:
        channel.ack(outcome.settled)
        self.metrics.processed(outcome.applied)
        self.metrics.duplicates(outcome.duplicates)
        for message, error in outcome.failed:
            self.metrics.failed()
            self._fail(channel, message, error)
        for message, reason in outcome.refused:
            log.warning("%s: message %s %s", self.consumer.name, message.message_id, reason)
            self.metrics.failed()
            self._dead_letter(channel, message, reason)

    # -- housekeeping -------------------------------------------------------------------------

    def _prune_inbox_if_due(self) -> None:
        if time.monotonic() - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = time.monotonic()
        try:
            pruned = self.prune_inbox()
        except exc.DBAPIError as error:
            log.warning("%s: could not prune the inbox: %s", self.consumer.name, _describe(error))
            return
        if pruned:
            log.info("%s: forgot %d inbox entries past the retention", self.consumer.name, pruned)

    def prune_inbox(self) -> int:
        """Delete this consumer's inbox entries older than the retention, a chunk at a time."""
        cutoff = utcnow() - self._inbox_retention
        pruned = 0
        while True:
            with session_scope(self._sessions) as session:
                deleted = outbox.prune_inbox(session, self.consumer.name, cutoff, PRUNE_CHUNK)
            pruned += deleted
            if deleted < PRUNE_CHUNK:
                return pruned

    def _fail(
        self, channel: ConsumerChannel, message: InboundMessage, error: BaseException
    ) -> None:
        reason = _describe(error)
        if isinstance(error, (PermanentError, ValidationError)):
            log.warning(
                "%s: message %s refused for good: %s",
                self.consumer.name,
                message.message_id,
                reason,
            )
            self._dead_letter(channel, message, reason)
            return
        at_least = error.after if isinstance(error, RetryLater) else 0.0
        delay = self._transport.topology.retry_delay(message.attempt, at_least)
        if delay is None:
            log.warning(
                "%s: message %s failed %d times, dead-lettering: %s",
                self.consumer.name,
                message.message_id,
                message.attempt,
                reason,
            )
            self._dead_letter(channel, message, reason)
            return
        log.info(
            "%s: message %s failed (attempt %d), retrying in %gs: %s",
            self.consumer.name,
            message.message_id,
            message.attempt,
            delay,
            reason,
        )
        channel.retry_later(message, delay=delay, attempt=message.attempt + 1, error=reason)
        self.metrics.retried()

    def _dead_letter(self, channel: ConsumerChannel, message: InboundMessage, reason: str) -> None:
        info = DeadLetterInfo(error=reason, attempts=message.attempt, consumer=self.consumer.name)
        channel.dead_letter(message, info)
        self.metrics.dead_lettered()

    def _requeue_quietly(self, channel: ConsumerChannel, messages: list[InboundMessage]) -> None:
        try:
            channel.requeue(messages)
        except BrokerUnavailable:
            log.debug("could not requeue; the transport redelivers them on its own")

    def _check_topology(self) -> None:
        spec = self._transport.topology.queue(self.consumer.queue)
        if tuple(self.consumer.bindings) != spec.bindings:
            raise ConfigError(
                f"consumer {self.consumer.name} expects {', '.join(self.consumer.bindings)} "
                f"but queue {spec.name} is bound to {', '.join(spec.bindings)}: make them agree"
            )


class _Job:
    """Runs `work` on a daemon thread (a hung handler must not keep the process alive)."""

    def __init__(self, work: Callable[[], _Outcome], on_done: Callable[[], None]) -> None:
        self.done = threading.Event()
        self.result = _Outcome()
        self.error: BaseException | None = None
        self._work = work
        self._on_done = on_done
        threading.Thread(target=self._run, name="weavenn-handler", daemon=True).start()

    def _run(self) -> None:
        try:
            self.result = self._work()
        except BaseException as error:
            self.error = error
        finally:
            self.done.set()
            try:
                self._on_done()
            except Exception:  # the channel may be closed by now; the loop polls anyway
                log.debug("wake-up after a handler failed", exc_info=True)


def _decode(message: InboundMessage) -> Delivery | str:
    """The delivery a consumer sees, or why the message is malformed."""
    try:
        body = json.loads(message.body)
    except (UnicodeDecodeError, ValueError) as error:
        return f"malformed message: body is not JSON ({error})"
    if not isinstance(body, dict):
        return f"malformed message: body is a JSON {type(body).__name__}, not an object"
    model = model_for(message.routing_key)
    try:
        event = model.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
            for problem in error.errors()[:5]
        )
        return f"malformed message: not a valid {model.__name__}: {problems}"
    return Delivery(
        message_id=event.message_id,
        routing_key=message.routing_key,
        body=body,
        headers=message.headers,
        attempt=message.attempt,
        redelivered=message.redelivered,
        event=event,
    )


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


_CONNECTION_ERRORS = (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError)


def _raise_if_database_down(error: BaseException, engine: Engine) -> None:
    """A connection-level error with the database not answering: pause, do not retry."""
    if isinstance(error, _CONNECTION_ERRORS) and not is_reachable(engine):
        raise DatabaseUnavailable(str(getattr(error, "orig", error)).strip().splitlines()[0])
