"""Against a RabbitMQ node of the test's own: a broker outage under the relay, and the
management API behind `bus status`. The shared broker is never stopped."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pika
import pytest
from sqlalchemy import Engine, func, select

from tests.bus.harness import vault_event, wait_until
from tests.bus.pipeline import note_count, reference, snapshot, weavenn_process, write_notes
from tests.bus.private_rabbitmq import PrivateRabbitMQ
from weavenn_cli.runtime.bus import outbox
from weavenn_cli.runtime.bus.backoff import Backoff
from weavenn_cli.runtime.bus.relay import Relay
from weavenn_cli.runtime.bus.transport import open_transport
from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.db.engine import make_engine, session_factory, session_scope
from weavenn_cli.runtime.db.models import OutboxMessage

pytestmark = pytest.mark.xdist_group("private-rabbitmq")


def _drain_ids(url: str, queue: str) -> list[str]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    ids = []
    while True:
        method, props, _ = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        ids.append(props.message_id)
    connection.close()
    return ids


def _pending(engine: Engine) -> int:
    with engine.connect() as connection:
        query = select(func.count()).where(OutboxMessage.published_at.is_(None))
        return int(connection.scalar(query) or 0)


def test_relay_loses_nothing_while_rabbitmq_is_stopped_and_started(
    private_rabbitmq: PrivateRabbitMQ, migrated_sqlite_url: str
) -> None:
    settings = load_settings(
        None, database_url=migrated_sqlite_url, rabbitmq_url=private_rabbitmq.url
    )
    engine = make_engine(migrated_sqlite_url)
    transport = open_transport(settings, engine)
    transport.setup()
    sessions = session_factory(engine)
    relay = Relay(
        engine,
        transport.publisher,
        window=50,
        poll_interval=0.05,
        backoff=Backoff(base=0.1, cap=0.5),
    )
    written: list[str] = []
    keep_writing = threading.Event()
    keep_writing.set()

    def watcher() -> None:  # keeps receiving changes, whatever the broker does
        while keep_writing.is_set():
            event = vault_event(f"outage/{len(written)}.md")
            with session_scope(sessions) as session:
                outbox.enqueue(session, event)
            written.append(event.message_id)
            relay.wake()
            time.sleep(0.01)

    relay.start()
    writer = threading.Thread(target=watcher, daemon=True)
    writer.start()
    try:
        wait_until(lambda: relay.stats.published >= 50, what="events flowing")
        private_rabbitmq.stop_app()
        published_while_down = relay.stats.published
        written_while_down = len(written)
        wait_until(lambda: len(written) >= written_while_down + 50, what="events while down")
        assert relay.stats.published == published_while_down  # nothing got through
        private_rabbitmq.start_app()
        wait_until(lambda: relay.stats.published > published_while_down, what="a reconnect")
        keep_writing.clear()
        writer.join(10)
        wait_until(lambda: _pending(engine) == 0, what="the backlog", timeout=60)
    finally:
        keep_writing.clear()
        relay.stop()
        transport.close()
    assert relay.stats.outages >= 1
    delivered = _drain_ids(private_rabbitmq.url, "mcp_sync")
    assert set(delivered) == set(written)  # every event, at least once


def test_bus_status_takes_unacknowledged_counts_from_the_management_api(
    private_rabbitmq: PrivateRabbitMQ, migrated_sqlite_url: str, run_weavenn
) -> None:
    env = {
        "DATABASE_URL": migrated_sqlite_url,
        "RABBITMQ_URL": private_rabbitmq.url,
        "RABBITMQ_MANAGEMENT_URL": private_rabbitmq.management_url,
    }
    assert run_weavenn("bus", "setup", env=env).returncode == 0
    connection = pika.BlockingConnection(pika.URLParameters(private_rabbitmq.url))
    channel = connection.channel()
    channel.queue_purge("agent_tasks")  # the node is shared by this module's tests
    channel.basic_publish("weave-nn.events", "task.created", b"{}")
    channel.basic_publish("weave-nn.events", "task.created", b"{}")
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume("agent_tasks", lambda *args: None)  # holds one, never acks
    try:

        def status() -> dict | None:
            connection.process_data_events(0.1)
            result = run_weavenn("bus", "status", "--json", env=env)
            assert result.returncode == 0, result.stderr
            queues = {q["queue"]: q for q in json.loads(result.stdout)["queues"]}
            agent = queues["agent_tasks"]
            return agent if agent["unacknowledged"] == 1 else None

        agent = wait_until(status, what="management statistics", timeout=30)
    finally:
        connection.close()
    assert agent["ready"] == 1
    assert agent["consumers"] == 1


def test_rabbitmq_stopped_while_the_watcher_keeps_receiving_changes_then_started_loses_nothing(
    private_rabbitmq: PrivateRabbitMQ,
    tmp_path: Path,
    migrated_sqlite_url: str,
    migrated_pg_url: str,
) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    env = {
        "DATABASE_URL": migrated_pg_url,
        "RABBITMQ_URL": private_rabbitmq.vhost(),
        "VAULT_PATH": str(vault),
        "DEBOUNCE_SECONDS": "0.1",
    }
    engine = make_engine(migrated_pg_url)
    with weavenn_process("watch", env=env), weavenn_process("consume", "mcp-sync", env=env):
        write_notes(vault, range(50), 200)
        wait_until(lambda: note_count(migrated_pg_url) == 50, what="the first notes", timeout=60)
        private_rabbitmq.stop_app()
        write_notes(vault, range(50, 200), 200)  # created while the broker is away
        write_notes(vault, range(0, 50, 5), 200, version=1)  # updated
        for number in range(1, 50, 10):  # deleted
            (vault / f"notes/0/n{number}.md").unlink()
        wait_until(lambda: _pending(engine) > 0, what="events held back")
        assert note_count(migrated_pg_url) == 50  # nothing got through meanwhile
        private_rabbitmq.start_app()
        expected = reference(vault, migrated_sqlite_url)
        wait_until(lambda: note_count(migrated_pg_url) == 195, what="every note", timeout=120)
        wait_until(lambda: snapshot(migrated_pg_url) == expected, what="the exact cache")
    engine.dispose()
    assert len(expected["notes"]) == 195  # type: ignore[arg-type]
