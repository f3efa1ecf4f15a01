"""The RabbitMQ transport (pika): topology, windowed publisher confirms, consumer channels.

Every queue argument is set explicitly (the queue type included): RabbitMQ 3.10 refuses a
declaration whose arguments differ from the existing queue's, and later versions change
defaults. Retries wait in per-queue TTL queues named after their delay, which dead-letter
back to the work queue, so a waiting message is held by the broker, not by a consumer.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, unquote, urlsplit
from urllib.request import Request, urlopen

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic
from sqlalchemy import Engine, exc

from weavenn_cli.runtime.bus import deadletters, outbox
from weavenn_cli.runtime.bus import transport as bus
from weavenn_cli.runtime.bus.topology import Topology
from weavenn_cli.runtime.config import mask_url
from weavenn_cli.runtime.db.engine import connection_error, session_factory, session_scope
from weavenn_cli.runtime.errors import WeavennError

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_SECONDS = 30.0
PERSISTENT = pika.DeliveryMode.Persistent


class RabbitMQTransport:
    name = "rabbitmq"

    def __init__(
        self, url: str, topology: Topology, engine: Engine, management_url: str | None = None
    ) -> None:
        self.topology = topology
        self._url = url
        self._engine = engine
        self._management_url = management_url
        self._admin: _AdminLink | None = None

    def describe(self) -> str:
        return f"RabbitMQ at {mask_url(self._url)}"

    def parameters(self, role: str) -> pika.URLParameters:
        try:
            parameters = pika.URLParameters(self._url)
        except Exception as error:
            raise WeavennError(
                f"RABBITMQ_URL {mask_url(self._url)} is not an AMQP URL ({error}): "
                "use amqp://USER:PASSWORD@HOST:5672/VHOST"
            ) from None
        parameters.client_properties = {
            "connection_name": f"weavenn {role} {socket.gethostname()}:{os.getpid()}"
        }
        return parameters

    def setup(self) -> None:
        with broker_errors():
            declare_topology(self._admin_link().channel, self.topology)

    def publisher(self) -> ConfirmingPublisher:
        # Queues first: a message published before its queues exist would be dropped.
        self.setup()
        return ConfirmingPublisher(self.parameters("relay"), self.topology.exchange)

    def consumer(self, queue: str, *, prefetch: int, consumer_name: str) -> RabbitConsumerChannel:
        self.topology.queue(queue)
        return RabbitConsumerChannel(
            self.parameters(f"consume {consumer_name}"),
            self.topology,
            queue,
            prefetch=prefetch,
            consumer_name=consumer_name,
        )

    def send_to_queue(self, queue: str, message: bus.OutgoingMessage) -> None:
        with broker_errors():
            self._admin_link().channel.basic_publish(
                exchange="",
                routing_key=queue,
                body=message.body,
                properties=properties(message),
                mandatory=True,
            )

    def collect_dead_letters(self) -> int:
        """Move the `dlq` queue into the `dead_letters` table, acking each batch after commit."""
        channel = self._admin_link().channel
        sessions = session_factory(self._engine)
        moved = 0
        while True:
            with broker_errors():
                try:
                    batch = _get_batch(channel, self.topology.dead_letter_queue, limit=200)
                except pika.exceptions.ChannelClosedByBroker as error:
                    if error.reply_code != 404:
                        raise
                    self._admin_link().reopen()  # no dlq queue yet: nothing dead-lettered
                    return moved
            if not batch:
                return moved
            try:
                with session_scope(sessions) as session:
                    for _, message in batch:
                        moved += _record_dead_letter(session, message)
            except exc.OperationalError as error:
                raise connection_error(self._engine.url, error) from None
            with broker_errors():
                channel.basic_ack(delivery_tag=batch[-1][0], multiple=True)

    def status(self) -> bus.BusStatus:
        self.collect_dead_letters()
        notes: list[str] = []
        depths = self._queue_depths(notes)
        unacked = self._unacknowledged(notes)
        dead = deadletters.DeadLetters(self._engine).counts_by_queue()
        queues = []
        for spec in self.topology.queues:
            ready, consumers = depths.get(spec.name, (None, None))
            retry_depths = [
                depths.get(self.topology.retry_queue(spec.name, d), (None, None))[0]
                for d in self.topology.retry_delays
            ]
            queues.append(
                bus.QueueStatus(
                    queue=spec.name,
                    bindings=spec.bindings,
                    ready=ready,
                    unacknowledged=unacked.get(spec.name) if unacked is not None else None,
                    consumers=consumers,
                    retrying=None if None in retry_depths else sum(retry_depths),  # type: ignore[arg-type]
                    dead_letters=dead.get(spec.name, 0),
                )
            )
        return bus.BusStatus(self.name, mask_url(self._url), queues, self._outbox_pending(), notes)

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    # -- internals --------------------------------------------------------------------------

    def _admin_link(self) -> _AdminLink:
        if self._admin is None or not self._admin.connection.is_open:
            with broker_errors():
                self._admin = _AdminLink(pika.BlockingConnection(self.parameters("admin")))
        return self._admin

    def _queue_depths(self, notes: list[str]) -> dict[str, tuple[int | None, int | None]]:
        """Ready messages and consumers per queue, exact, from passive declares."""
        names = [q.name for q in self.topology.queues]
        names += [
            self.topology.retry_queue(q, d) for q in names for d in self.topology.retry_delays
        ]
        depths: dict[str, tuple[int | None, int | None]] = {}
        missing = []
        for name in names:
            with broker_errors():
                try:
                    frame = self._admin_link().channel.queue_declare(name, passive=True)
                except pika.exceptions.ChannelClosedByBroker as error:
                    if error.reply_code != 404:
                        raise
                    self._admin_link().reopen()
                    missing.append(name)
                    continue
            depths[name] = (frame.method.message_count, frame.method.consumer_count)
        if missing:
            notes.append(f"missing queues ({', '.join(missing)}): run `weavenn bus setup`")
        return depths

    def _unacknowledged(self, notes: list[str]) -> dict[str, int] | None:
        """Unacknowledged counts come only from the management API (AMQP does not tell)."""
        api, vhost, credentials = management_endpoint(self._url, self._management_url)
        request = Request(
            f"{api}/api/queues/{quote(vhost, safe='')}?columns=name,messages_unacknowledged",
            headers={"Authorization": f"Basic {credentials}"},
        )
        try:
            with urlopen(request, timeout=5) as response:
                rows = json.load(response)
        except (URLError, HTTPError, TimeoutError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            notes.append(
                f"unacknowledged counts need the RabbitMQ management plugin at "
                f"{mask_url(api)} ({reason}); set RABBITMQ_MANAGEMENT_URL"
            )
            return None
        return {row["name"]: int(row.get("messages_unacknowledged") or 0) for row in rows}

    def _outbox_pending(self) -> int:
        try:
            with session_scope(session_factory(self._engine)) as session:
                return outbox.pending_count(session)
        except exc.OperationalError as error:
            raise connection_error(self._engine.url, error) from None


@dataclass
class _AdminLink:
    """A blocking connection with a confirming channel, for setup, status, replay and dlq."""

    connection: Any
    channel: BlockingChannel = field(init=False)

    def __post_init__(self) -> None:
        self.reopen()

    def reopen(self) -> None:
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def close(self) -> None:
        _close_quietly(self.connection)


def declare_topology(channel: BlockingChannel, topology: Topology) -> None:
    """Declare exchanges, queues, bindings and retry queues; idempotent."""
    channel.exchange_declare(topology.exchange, exchange_type="topic", durable=True)
    channel.exchange_declare(topology.dead_letter_exchange, exchange_type="topic", durable=True)
    channel.queue_declare(
        topology.dead_letter_queue, durable=True, arguments={"x-queue-type": "classic"}
    )
    channel.queue_bind(topology.dead_letter_queue, topology.dead_letter_exchange, "#")
    for spec in topology.queues:
        channel.queue_declare(
            spec.name,
            durable=True,
            arguments={
                "x-queue-type": "classic",
                # Messages rejected without requeue (by any client) still end in dlq.
                "x-dead-letter-exchange": topology.dead_letter_exchange,
            },
        )
        for pattern in spec.bindings:
            channel.queue_bind(spec.name, topology.exchange, pattern)
        for delay in topology.retry_delays:
            channel.queue_declare(
                topology.retry_queue(spec.name, delay),
                durable=True,
                arguments={
                    "x-queue-type": "classic",
                    "x-message-ttl": round(delay * 1000),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": spec.name,
                },
            )


def properties(message: bus.OutgoingMessage) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type=bus.JSON_CONTENT_TYPE,
        delivery_mode=PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        timestamp=int(message.timestamp.timestamp()),
        headers=dict(message.headers),
        type=message.routing_key,
        app_id="weavenn",
    )


@contextmanager
def broker_errors() -> Iterator[None]:
    """pika's connection failures become BrokerUnavailable; refused declarations say why."""
    try:
        yield
    except pika.exceptions.ChannelClosedByBroker as error:
        if error.reply_code == 406:
            raise WeavennError(
                f"RabbitMQ refused a declaration: {error.reply_text}; delete the conflicting "
                "queue or exchange (rabbitmqctl delete_queue NAME) and run `weavenn bus setup`"
            ) from None
        raise bus.BrokerUnavailable(
            f"RabbitMQ closed the channel: {error.reply_code} {error.reply_text}"
        ) from error
    except pika.exceptions.UnroutableError:
        raise WeavennError(
            "no queue took the message: run `weavenn bus setup` to declare the topology"
        ) from None
    except pika.exceptions.NackError as error:
        raise bus.BrokerUnavailable(f"RabbitMQ refused the message: {error}") from error
    except (
        pika.exceptions.AMQPConnectionError,
        pika.exceptions.AMQPChannelError,
        pika.exceptions.ConnectionWrongStateError,
        pika.exceptions.ChannelWrongStateError,
        OSError,
    ) as error:
        raise bus.BrokerUnavailable(f"RabbitMQ unreachable: {_describe(error)}") from error


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _close_quietly(connection: Any) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # closing a broken connection: nothing left to save
        log.debug("error while closing a RabbitMQ connection", exc_info=True)


def management_endpoint(amqp_url: str, management_url: str | None) -> tuple[str, str, str]:
    """The management API base URL, the vhost, and Basic credentials, from the AMQP URL."""
    amqp = urlsplit(amqp_url)
    vhost = unquote(amqp.path[1:]) if len(amqp.path) > 1 else "/"
    api = urlsplit(management_url) if management_url else None
    source = api or amqp
    user = unquote(source.username or "guest")
    password = unquote(source.password or "guest")
    if api is None:
        scheme = "https" if amqp.scheme == "amqps" else "http"
        port = 15671 if amqp.scheme == "amqps" else 15672
        base = f"{scheme}://{amqp.hostname or 'localhost'}:{port}"
    else:
        netloc = api.hostname or "localhost"
        base = f"{api.scheme}://{netloc}" + (f":{api.port}" if api.port else "") + api.path
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return base.rstrip("/"), vhost, token


# -- publishing with windowed confirms -------------------------------------------------------


@dataclass
class _Batch:
    """One publish() call: settles as the broker acks or nacks each message."""

    expected: int
    confirmed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)

    def settle(self, message_id: str, error: str | None) -> None:
        if error is None:
            self.confirmed.append(message_id)
        else:
            self.failed[message_id] = error
        if len(self.confirmed) + len(self.failed) >= self.expected:
            self.done.set()


class ConfirmingPublisher:
    """Publishes a window of messages at once and returns when the broker confirmed them all.

    pika's BlockingChannel waits for each confirm in turn; this runs a SelectConnection on an
    I/O thread instead, so a window of N messages costs one round trip, not N.
    """

    def __init__(self, parameters: pika.URLParameters, exchange: str) -> None:
        self._exchange = exchange
        self._ready = threading.Event()
        self._failure: str | None = None
        self._channel: Any = None
        self._next_tag = 0
        self._outstanding: dict[int, tuple[_Batch, str]] = {}
        self._connection = pika.SelectConnection(
            parameters,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )
        self._thread = threading.Thread(
            target=self._connection.ioloop.start, name="weavenn-publisher", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(CONFIRM_TIMEOUT_SECONDS) or self._failure:
            reason = self._failure or "no answer"
            self.close()
            raise bus.BrokerUnavailable(f"RabbitMQ unreachable: {reason}")

    def publish(self, messages: Sequence[bus.OutgoingMessage]) -> bus.PublishResult:
        if self._failure:
            raise bus.BrokerUnavailable(f"RabbitMQ connection lost: {self._failure}")
        batch = _Batch(expected=len(messages))
        if not messages:
            return bus.PublishResult(confirmed=[])
        self._connection.ioloop.add_callback_threadsafe(lambda: self._send(batch, messages))
        if not batch.done.wait(CONFIRM_TIMEOUT_SECONDS):
            self._failure = f"no publisher confirms within {CONFIRM_TIMEOUT_SECONDS:.0f}s"
        return bus.PublishResult(confirmed=list(batch.confirmed), failed=dict(batch.failed))

    def close(self) -> None:
        if self._thread.is_alive():
            self._connection.ioloop.add_callback_threadsafe(self._close_connection)
            self._thread.join(timeout=10)

    # -- on the I/O thread --------------------------------------------------------------------

    def _send(self, batch: _Batch, messages: Sequence[bus.OutgoingMessage]) -> None:
        for message in messages:
            if self._failure or self._channel is None or not self._channel.is_open:
                batch.settle(message.message_id, f"not sent: {self._failure or 'channel closed'}")
                continue
            try:
                self._channel.basic_publish(
                    self._exchange,
                    message.routing_key,
                    message.body,
                    properties(message),
                    mandatory=True,
                )
            except pika.exceptions.AMQPError as error:  # the channel closed under us
                batch.settle(message.message_id, f"not sent: {_describe(error)}")
                continue
            self._next_tag += 1
            self._outstanding[self._next_tag] = (batch, message.message_id)

    def _on_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda _ok: self._ready.set())

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        error = None if isinstance(method, Basic.Ack) else "refused by the broker (nack)"
        if method.multiple:
            tags = [tag for tag in self._outstanding if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        for tag in tags:
            entry = self._outstanding.pop(tag, None)
            if entry is not None:
                entry[0].settle(entry[1], error)

    def _on_return(self, _channel: Any, method: Any, props: Any, _body: bytes) -> None:
        # Confirmed right after: nothing is bound to this routing key, nobody wants it.
        log.warning(
            "no queue is bound to %s: message %s dropped", method.routing_key, props.message_id
        )

    def _on_open_error(self, connection: Any, error: BaseException) -> None:
        self._failure = _describe(error)
        self._ready.set()
        connection.ioloop.stop()

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        self._fail_outstanding(f"channel closed: {_describe(reason)}")
        self._close_connection()

    def _on_closed(self, connection: Any, reason: BaseException) -> None:
        self._fail_outstanding(f"connection closed: {_describe(reason)}")
        self._ready.set()
        connection.ioloop.stop()

    def _fail_outstanding(self, reason: str) -> None:
        self._failure = self._failure or reason
        for batch, message_id in self._outstanding.values():
            batch.settle(message_id, reason)
        self._outstanding.clear()

    def _close_connection(self) -> None:
        if self._connection.is_open:
            self._connection.close()
        elif self._connection.is_closed:
            self._connection.ioloop.stop()


# -- consuming --------------------------------------------------------------------------------


class RabbitConsumerChannel:
    """A blocking connection consuming one queue; only the thread that made it may call it.

    The runner runs handlers on a worker thread and calls `keep_alive` meanwhile, so
    heartbeats are answered however long a handler takes.
    """

    def __init__(
        self,
        parameters: pika.URLParameters,
        topology: Topology,
        queue: str,
        *,
        prefetch: int,
        consumer_name: str,
    ) -> None:
        self._topology = topology
        self._queue = queue
        self._buffer: deque[bus.InboundMessage] = deque()
        self._unsettled: set[int] = set()  # delivery tags neither acked nor rejected
        with broker_errors():
            self._connection = pika.BlockingConnection(parameters)
            try:
                self._channel = self._connection.channel()
                declare_topology(self._channel, topology)
                self._channel.basic_qos(prefetch_count=prefetch)
                self._publisher = self._connection.channel()
                self._publisher.confirm_delivery()
                self._tag = self._channel.basic_consume(
                    queue,
                    self._on_message,
                    auto_ack=False,
                    consumer_tag=_consumer_tag(consumer_name),
                )
            except BaseException:
                _close_quietly(self._connection)
                raise

    def receive(self, max_messages: int, timeout: float) -> list[bus.InboundMessage]:
        with broker_errors():
            self._connection.process_data_events(time_limit=0 if self._buffer else timeout)
        count = min(max_messages, len(self._buffer))
        return [self._buffer.popleft() for _ in range(count)]

    def keep_alive(self, seconds: float) -> None:
        with broker_errors():
            self._connection.process_data_events(time_limit=seconds)

    def wake(self) -> None:
        """Thread-safe: make a running keep_alive return now."""
        self._connection.add_callback_threadsafe(lambda: None)

    def ack(self, messages: Sequence[bus.InboundMessage]) -> None:
        tags = {message.handle for message in messages}
        if not tags:
            return
        top = max(tags)
        with broker_errors():
            if all(tag in tags for tag in self._unsettled if tag <= top):
                # Everything up to `top` is settled by this: one frame acks the lot.
                self._channel.basic_ack(delivery_tag=top, multiple=True)
            else:
                for tag in sorted(tags):
                    self._channel.basic_ack(delivery_tag=tag)
        self._unsettled.difference_update(tags)

    def requeue(self, messages: Sequence[bus.InboundMessage]) -> None:
        with broker_errors():
            for message in messages:
                self._channel.basic_nack(delivery_tag=message.handle, requeue=True)
                self._unsettled.discard(message.handle)

    def retry_later(
        self, message: bus.InboundMessage, *, delay: float, attempt: int, error: str
    ) -> None:
        outgoing = message.to_outgoing(**{bus.ATTEMPT: attempt, bus.ERROR: error[:4000]})
        self._publish_then_ack(
            message, "", self._topology.retry_queue(self._queue, delay), outgoing
        )

    def dead_letter(self, message: bus.InboundMessage, info: bus.DeadLetterInfo) -> None:
        headers = info.headers(self._queue, uuid.uuid4().hex)
        outgoing = message.to_outgoing(**headers)
        self._publish_then_ack(
            message, self._topology.dead_letter_exchange, message.routing_key, outgoing
        )

    def cancel(self) -> None:
        with broker_errors():
            self._channel.basic_cancel(self._tag)
        self.requeue(list(self._buffer))
        self._buffer.clear()

    def close(self) -> None:
        _close_quietly(self._connection)

    def _publish_then_ack(
        self,
        message: bus.InboundMessage,
        exchange: str,
        routing_key: str,
        outgoing: bus.OutgoingMessage,
    ) -> None:
        with broker_errors():
            self._publisher.basic_publish(
                exchange, routing_key, outgoing.body, properties(outgoing), mandatory=True
            )
            self._channel.basic_ack(delivery_tag=message.handle)
        self._unsettled.discard(message.handle)

    def _on_message(self, _channel: Any, method: Any, props: Any, body: bytes) -> None:
        self._unsettled.add(method.delivery_tag)
        self._buffer.append(_inbound(self._queue, method, props, body))


def _consumer_tag(consumer_name: str) -> str:
    return f"weavenn-{consumer_name}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _inbound(queue: str, method: Any, props: Any, body: bytes) -> bus.InboundMessage:
    headers = bus.jsonable(props.headers or {})
    timestamp = datetime.fromtimestamp(props.timestamp, UTC) if props.timestamp else None
    return bus.InboundMessage(
        handle=method.delivery_tag,
        queue=queue,
        message_id=props.message_id,
        routing_key=str(headers.get(bus.ROUTING_KEY) or method.routing_key),
        body=body,
        headers=headers,
        correlation_id=props.correlation_id,
        timestamp=timestamp,
        redelivered=bool(getattr(method, "redelivered", False)),
    )


def _get_batch(
    channel: BlockingChannel, queue: str, limit: int
) -> list[tuple[int, bus.InboundMessage]]:
    batch = []
    for _ in range(limit):
        method, props, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            break
        batch.append((method.delivery_tag, _inbound(queue, method, props, body)))
    return batch


def _record_dead_letter(session: Any, message: bus.InboundMessage) -> int:
    """Store one message of RabbitMQ's dlq, whoever dead-lettered it."""
    headers = message.headers
    death = _first_death(headers)
    queue = headers.get(bus.QUEUE) or death.get("queue")
    error = headers.get(bus.ERROR) or f"dead-lettered by RabbitMQ: {death.get('reason', 'unknown')}"
    attempts = headers.get(bus.ATTEMPT) or death.get("count") or 1
    key = headers.get(bus.DEAD_LETTER_ID) or deadletters.fallback_key(
        message.message_id, queue, death.get("time"), message.body
    )
    failed_at = _parse_time(headers.get(bus.FAILED_AT) or death.get("time"))
    return int(
        deadletters.record(
            session,
            message,
            key=str(key),
            error=str(error),
            attempts=int(attempts),
            queue=str(queue) if queue else None,
            consumer=headers.get(bus.CONSUMER),
            failed_at=failed_at,
        )
    )


def _first_death(headers: Any) -> dict[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[-1], dict):
        return deaths[-1]
    return {}


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None
