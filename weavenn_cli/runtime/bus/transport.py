"""What the relay, the consumer runner and the dlq tools need from a transport.

Two transports implement it: RabbitMQ (`rabbitmq.py`, when RABBITMQ_URL is set) and the
embedded transport in the main database (`embedded.py`). Code above this interface never
knows which one it runs on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from weavenn_cli.runtime.bus.topology import Topology, topology_from_settings
from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.errors import WeavennError

if TYPE_CHECKING:
    from sqlalchemy import Engine

JSON_CONTENT_TYPE = "application/json"

# Headers the bus adds to a message on its way through retries and into the dead letters.
ATTEMPT = "x-attempt"  # delivery attempt the message is on, from 1
ERROR = "x-error"  # why the previous attempt failed / why it was dead-lettered
ROUTING_KEY = "x-routing-key"  # the original routing key, kept while the message is rerouted
QUEUE = "x-queue"  # the work queue it failed in
CONSUMER = "x-consumer"
FAILED_AT = "x-failed-at"
DEAD_LETTER_ID = "x-dead-letter-id"  # makes moving RabbitMQ's dlq into the table idempotent


class BrokerUnavailable(WeavennError):
    """The transport cannot be reached now; callers back off and reconnect."""


@dataclass(frozen=True)
class OutgoingMessage:
    """A persistent JSON message as the transports publish it."""

    message_id: str
    routing_key: str
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    timestamp: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class InboundMessage:
    """A message a consumer channel handed out; `handle` is the transport's own reference."""

    handle: Any
    queue: str
    message_id: str | None
    routing_key: str
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    timestamp: datetime | None = None
    redelivered: bool = False

    @property
    def attempt(self) -> int:
        value = self.headers.get(ATTEMPT, 1)
        return value if isinstance(value, int) and value > 0 else 1

    def to_outgoing(self, **headers: Any) -> OutgoingMessage:
        """The same message, to publish again, with `headers` changed (None removes one)."""
        merged = {**self.headers, ROUTING_KEY: self.routing_key, **headers}
        return OutgoingMessage(
            message_id=self.message_id or "",
            routing_key=self.routing_key,
            body=self.body,
            headers={key: value for key, value in merged.items() if value is not None},
            correlation_id=self.correlation_id,
            timestamp=self.timestamp or utcnow(),
        )


@dataclass(frozen=True)
class PublishResult:
    """Which messages the transport confirmed, and why the others were refused."""

    confirmed: list[str]
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueStatus:
    """One work queue as `weavenn bus status` shows it; None where the transport cannot tell."""

    queue: str
    bindings: tuple[str, ...]
    ready: int | None
    unacknowledged: int | None
    consumers: int | None
    retrying: int | None
    dead_letters: int


@dataclass(frozen=True)
class BusStatus:
    transport: str
    target: str
    queues: list[QueueStatus]
    outbox_pending: int
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeadLetterInfo:
    """What a consumer channel records about a message it gives up on."""

    error: str
    attempts: int
    consumer: str

    def headers(self, queue: str, key: str) -> dict[str, Any]:
        return {
            ERROR: self.error[:4000],
            ATTEMPT: self.attempts,
            QUEUE: queue,
            CONSUMER: self.consumer,
            FAILED_AT: utcnow().isoformat(),
            DEAD_LETTER_ID: key,
        }


class Publisher(Protocol):
    """Publishes to the topic exchange; a message is confirmed once the transport owns it."""

    def publish(self, messages: Sequence[OutgoingMessage]) -> PublishResult: ...

    def close(self) -> None: ...


class ConsumerChannel(Protocol):
    """One consumer's session on one queue. Raises BrokerUnavailable when the link is lost."""

    def receive(self, max_messages: int, timeout: float) -> list[InboundMessage]:
        """Messages ready now, or the first to arrive within `timeout` seconds (maybe none)."""
        ...

    def keep_alive(self, seconds: float) -> None:
        """Keep the session alive (heartbeats, leases) for about `seconds` while work runs."""
        ...

    def wake(self) -> None:
        """Make a `keep_alive` running in another thread return now (thread-safe)."""
        ...

    def ack(self, messages: Sequence[InboundMessage]) -> None: ...

    def requeue(self, messages: Sequence[InboundMessage]) -> None:
        """Give messages back for immediate redelivery, attempt unchanged."""
        ...

    def retry_later(
        self, message: InboundMessage, *, delay: float, attempt: int, error: str
    ) -> None:
        """Deliver `message` again after `delay` seconds as attempt `attempt`; ack this copy."""
        ...

    def dead_letter(self, message: InboundMessage, info: DeadLetterInfo) -> None:
        """Move `message` to the dead letters with `info`; ack this copy."""
        ...

    def cancel(self) -> None:
        """Stop receiving; messages not handed out yet go back to the queue."""
        ...

    def close(self) -> None: ...


class Transport(Protocol):
    name: str
    topology: Topology

    def describe(self) -> str:
        """Where messages go, safe to print (no password)."""
        ...

    def setup(self) -> None:
        """Make sure the topology exists (idempotent)."""
        ...

    def publisher(self) -> Publisher: ...

    def consumer(self, queue: str, *, prefetch: int, consumer_name: str) -> ConsumerChannel: ...

    def send_to_queue(self, queue: str, message: OutgoingMessage) -> None:
        """Put `message` into one queue only (a replayed dead letter), confirmed."""
        ...

    def collect_dead_letters(self) -> int:
        """Move dead letters held by the broker into the `dead_letters` table; how many."""
        ...

    def status(self) -> BusStatus: ...

    def close(self) -> None: ...


def open_transport(
    settings: Settings, engine: Engine, topology: Topology | None = None
) -> Transport:
    """RabbitMQ when RABBITMQ_URL is set, else the embedded transport in the main database."""
    topology = topology or topology_from_settings(settings)
    if settings.rabbitmq_url:
        from weavenn_cli.runtime.bus.rabbitmq import RabbitMQTransport

        return RabbitMQTransport(
            settings.rabbitmq_url,
            topology,
            engine,
            management_url=settings.rabbitmq_management_url,
        )
    from weavenn_cli.runtime.bus.embedded import EmbeddedTransport

    return EmbeddedTransport(engine, topology)


def jsonable(value: Any) -> Any:
    """AMQP header values as JSON can store them (timestamps, bytes and decimals included)."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
