"""A bus set up for one test: database, transport, and helpers to publish and observe."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select

from tests.bus.consumers import create_effects_table, effects
from weavenn_cli.runtime.bus import outbox
from weavenn_cli.runtime.bus.transport import OutgoingMessage, Transport, open_transport
from weavenn_cli.runtime.config import Settings, load_settings
from weavenn_cli.runtime.consumers.runner import Runner
from weavenn_cli.runtime.db.engine import (
    make_engine,
    parse_database_url,
    session_factory,
    session_scope,
)
from weavenn_cli.runtime.events import VaultFileEvent, derive_message_id

ROOT = Path(__file__).resolve().parents[2]
RETRY_DELAYS = "0.2,0.4"  # three attempts, quickly


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)


def vault_event(path: str, kind: str = "vault.file.created", seq: int = 0) -> VaultFileEvent:
    return VaultFileEvent(
        message_id=derive_message_id("test", kind, path, seq),
        event_type=kind,  # type: ignore[arg-type]
        file_path=path,
        vault_id="test",
        sequence=seq,
    )


def message(event: VaultFileEvent) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=event.message_id,
        routing_key=event.routing_key,
        body=event.model_dump_json().encode(),
    )


@dataclass
class Bus:
    kind: str  # "rabbitmq" or "embedded"
    database_url: str
    rabbitmq_url: str | None
    settings: Settings = field(init=False)
    engine: Engine = field(init=False)
    reader: Engine = field(init=False)
    transport: Transport = field(init=False)

    def __post_init__(self) -> None:
        self.settings = load_settings(
            None,
            database_url=self.database_url,
            rabbitmq_url=self.rabbitmq_url,
            bus_retry_delays=RETRY_DELAYS,
        )
        self.engine = make_engine(self.database_url)
        # Observing must not queue behind the consumer for SQLite's write lock (the engine
        # begins every transaction with BEGIN IMMEDIATE): plain reads, as WAL allows.
        self.reader = create_engine(parse_database_url(self.database_url))
        self.transport = open_transport(self.settings, self.engine)
        self.transport.setup()

    @property
    def env(self) -> dict[str, str]:
        """Environment for a `weavenn` subprocess on this bus."""
        env = {
            "DATABASE_URL": self.database_url,
            "BUS_RETRY_DELAYS": RETRY_DELAYS,
            "PYTHONPATH": str(ROOT),
        }
        if self.rabbitmq_url:
            env["RABBITMQ_URL"] = self.rabbitmq_url
        return env

    def publish(self, events: Sequence[VaultFileEvent]) -> None:
        publisher = self.transport.publisher()
        try:
            result = publisher.publish([message(event) for event in events])
        finally:
            publisher.close()
        assert not result.failed, result.failed

    def enqueue(self, events: Sequence[VaultFileEvent]) -> None:
        """Write events to the outbox, as the watcher does."""
        with session_scope(session_factory(self.engine)) as session:
            for event in events:
                outbox.enqueue(session, event)

    def effects(self, consumer: str | None = None) -> list[tuple[str, str, str | None]]:
        query = select(effects.c.message_id, effects.c.file_path, effects.c.batch).order_by(
            effects.c.id
        )
        if consumer:
            query = query.where(effects.c.consumer == consumer)
        with self.reader.connect() as connection:
            return [tuple(row) for row in connection.execute(query)]  # type: ignore[misc]

    def effect_count(self) -> int:
        with self.reader.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(effects)) or 0)

    def queue(self, name: str) -> Any:
        return next(q for q in self.transport.status().queues if q.queue == name)

    @contextmanager
    def running(self, consumer: Any, **options: Any) -> Iterator[Runner]:
        """Run `consumer` on a thread for the duration of the block, then stop it."""
        runner = Runner(consumer, self.transport, self.engine, **options)
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        try:
            yield runner
        finally:
            runner.stop()
            thread.join(timeout=30)
            assert not thread.is_alive(), "runner did not stop"

    def close(self) -> None:
        self.transport.close()
        self.engine.dispose()
        self.reader.dispose()


def subprocess_env(bus: Bus, **extra: str) -> dict[str, str]:
    return {**os.environ, **bus.env, **extra}


def make_bus(request: pytest.FixtureRequest, variant: str) -> Bus:
    """A bus for `variant` ("rabbitmq-postgresql", "embedded-sqlite"...), with the effects
    table of the test consumers."""
    kind, database = variant.split("-")
    fixture = "migrated_pg_url" if database == "postgresql" else "migrated_sqlite_url"
    database_url = str(request.getfixturevalue(fixture))
    rabbitmq_url = str(request.getfixturevalue("rabbitmq_url")) if kind == "rabbitmq" else None
    create_effects_table(database_url)
    return Bus(kind, database_url, rabbitmq_url)


def bus_fixture(transports: Sequence[str]) -> Any:
    """The `bus` fixture of a test folder: each test once per transport in `transports`."""

    @pytest.fixture(params=list(transports))
    def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
        """A bus with its topology declared and an effects table for the test consumers,
        once per transport of the folder."""
        harness = make_bus(request, request.param)
        yield harness
        harness.close()

    return bus


@pytest.fixture
def embedded_bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    """The embedded transport on SQLite."""
    harness = make_bus(request, "embedded-sqlite")
    yield harness
    harness.close()


@pytest.fixture
def rabbitmq_bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    """RabbitMQ, with PostgreSQL."""
    harness = make_bus(request, "rabbitmq-postgresql")
    yield harness
    harness.close()


@contextmanager
def consume_process(
    bus: Bus, consumer: str, *args: str, **env: str
) -> Iterator[subprocess.Popen[str]]:
    """`weavenn consume CONSUMER ARGS` on this bus; killed at the end if still running."""
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "weavenn"), "consume", consumer, *args],
        env=subprocess_env(bus, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)
