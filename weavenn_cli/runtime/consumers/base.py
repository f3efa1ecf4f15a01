"""The contract between the consumer runner and the consumers.

The runner owns everything about delivery: it receives a message from the transport, opens a
database transaction, skips a message id already in the consumer's inbox, calls `handle`,
records the message id in the inbox, commits, and only then acknowledges. A consumer only
applies the effect of one message; it never acks, retries or talks to the broker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Delivery:
    """One message as a consumer sees it, whatever the transport."""

    message_id: str
    routing_key: str
    body: Mapping[str, Any]
    headers: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1
    redelivered: bool = False
    event: Any = None
    """The body as the runner validated it (the event model of its routing key), if it did:
    a consumer may use it instead of validating the body again."""


class Consumer(Protocol):
    """What `weavenn consume NAME` runs."""

    name: ClassVar[str]
    """CLI name, e.g. `mcp-sync`; also the consumer's name in the inbox."""

    queue: ClassVar[str]
    """Queue it consumes, e.g. `mcp_sync`."""

    bindings: ClassVar[tuple[str, ...]]
    """Routing-key patterns bound to the queue on the topic exchange."""

    # Optional `commit_each: ClassVar[bool] = True`: the runner commits each message before
    # handling the next (by default, messages in hand share one transaction, a savepoint each).
    # For consumers whose effect also leaves the database (a file written, a webhook called).

    def handle(self, session: Session, delivery: Delivery) -> None:
        """Apply the effect of `delivery` inside `session`'s transaction.

        Raise `PermanentError` for a message that can never succeed (it goes straight to the
        dead-letter queue); any other exception is retried with a growing delay.
        """
        ...


class PermanentError(Exception):
    """The message itself is wrong (bad schema, refused by the target): do not retry."""


class RetryLater(Exception):
    """A temporary failure that knows when to try again (an HTTP 429's Retry-After).

    The runner waits at least `after` seconds (the first delay of the retry schedule that is
    long enough); it still counts against the retry budget.
    """

    def __init__(self, message: str, *, after: float) -> None:
        super().__init__(message)
        self.after = after


class BatchConsumer(Protocol):
    """A consumer whose effect is cheaper for many messages at once (git: one commit).

    The runner collects deliveries and calls `handle_batch` when `batch_size` are pending or
    when none arrived for `batch_idle_seconds` (each arrival restarts the wait), and at
    shutdown. Then it records every applied message in the inbox, commits, and only then
    acknowledges: a message is acked once its effect is in place, never before.
    """

    name: ClassVar[str]
    queue: ClassVar[str]
    bindings: ClassVar[tuple[str, ...]]
    batch_size: int
    batch_idle_seconds: float

    def handle_batch(
        self, session: Session, deliveries: Sequence[Delivery]
    ) -> Mapping[str, Exception]:
        """Apply `deliveries` (duplicates already removed) inside `session`'s transaction.

        Return the failures by message id; the runner retries or dead-letters those like a
        single consumer's exceptions and settles the rest as applied. Raising fails them all.
        """
        ...
