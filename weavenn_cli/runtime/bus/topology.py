"""The event bus topology, described once and used by both transports.

RabbitMQ declares it (exchanges, queues, bindings, retry queues); the embedded transport fans
messages out with the same bindings and waits the same retry delays.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

from weavenn_cli.runtime.config import DEFAULT_RETRY_DELAYS, Settings
from weavenn_cli.runtime.errors import ConfigError

DEAD_LETTER_EXCHANGE = "weave-nn.dlx"
DEAD_LETTER_QUEUE = "dlq"


@dataclass(frozen=True)
class QueueSpec:
    """A durable work queue and the routing-key patterns bound to it on the topic exchange."""

    name: str
    bindings: tuple[str, ...]

    def accepts(self, routing_key: str) -> bool:
        return any(topic_matches(pattern, routing_key) for pattern in self.bindings)


WORK_QUEUES = (
    QueueSpec("mcp_sync", ("vault.file.*",)),
    QueueSpec("git_auto_commit", ("vault.file.*",)),
    QueueSpec("agent_tasks", ("vault.file.created", "vault.file.updated", "task.*")),
    QueueSpec("n8n_workflows", ("vault.#", "task.#")),
)


@dataclass(frozen=True)
class Topology:
    """Exchanges, queues, bindings and the retry schedule of the bus."""

    exchange: str = "weave-nn.events"
    queues: tuple[QueueSpec, ...] = WORK_QUEUES
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    dead_letter_exchange: str = DEAD_LETTER_EXCHANGE
    dead_letter_queue: str = DEAD_LETTER_QUEUE
    _by_name: dict[str, QueueSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {queue.name: queue for queue in self.queues})

    @property
    def max_attempts(self) -> int:
        """Deliveries a message gets before it is dead-lettered: the first plus one per delay."""
        return len(self.retry_delays) + 1

    def has_queue(self, name: str | None) -> bool:
        return name in self._by_name

    def queue(self, name: str) -> QueueSpec:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(self._by_name)
            raise ConfigError(
                f"queue {name!r} is not in the bus topology (known: {known})"
            ) from None

    def queues_for(self, routing_key: str) -> list[str]:
        """The queues a message with `routing_key` reaches, in topology order."""
        return [queue.name for queue in self.queues if queue.accepts(routing_key)]

    def retry_queue(self, queue: str, delay: float) -> str:
        """The queue holding `queue`'s messages for `delay` seconds.

        The delay is part of the name, so changing the schedule declares new queues instead of
        clashing with the arguments of existing ones.
        """
        return f"{queue}.retry.{round(delay * 1000)}ms"

    def retry_delay(self, attempt: int, at_least: float = 0.0) -> float | None:
        """How long to wait before delivery `attempt + 1`; None when the budget is spent.

        `at_least` (a consumer's Retry-After) picks a later, longer delay of the schedule.
        """
        remaining = self.retry_delays[attempt - 1 :]
        if not remaining:
            return None
        return next((delay for delay in remaining if delay >= at_least), remaining[-1])

    def with_queues(self, *queues: QueueSpec) -> Topology:
        return replace(self, queues=self.queues + queues)


def topology_from_settings(settings: Settings) -> Topology:
    return _topology(settings.rabbitmq_exchange, tuple(settings.bus_retry_delays))


@lru_cache(maxsize=8)
def _topology(exchange: str, retry_delays: tuple[float, ...]) -> Topology:
    return Topology(exchange=exchange, retry_delays=retry_delays)


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` is zero or more words."""
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


@lru_cache(maxsize=1024)
def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])
