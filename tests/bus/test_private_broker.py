"""Against a RabbitMQ node of the test's own: a broker outage under the relay, and the
management API behind `bus status`. The shared broker is never stopped."""

from __future__ import annotations

import json
import threading
import time

import pika
import pytest

from tests.bus.harness import vault_event, wait_until
from tests.bus.private_rabbitmq import PrivateRabbitMQ
from weavenn_cli.runtime.bus import outbox
from weavenn_cli.runtime.bus.backoff import Backoff
from weavenn_cli.runtime.bus.relay import Relay
from weavenn_cli.runtime.bus.transport import open_transport
from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.db.engine import make_engine, session_factory, session_scope

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
    events = [vault_event(f"outage/{i}.md") for i in range(300)]
    written = threading.Event()

    def watcher() -> None:  # keeps receiving changes, whatever the broker does
        for event in events:
            with session_scope(sessions) as session:
                outbox.enqueue(session, event)
            relay.wake()
            time.sleep(0.01)
        written.set()

    relay.start()
    writer = threading.Thread(target=watcher, daemon=True)
    writer.start()
    try:
        wait_until(lambda: relay.stats.published >= 50, what="events flowing")
        private_rabbitmq.stop_app()
        published_while_down = relay.stats.published
        time.sleep(1.0)
        assert relay.stats.published == published_while_down  # nothing got through
        private_rabbitmq.start_app()
        wait_until(written.is_set, what="the writer", timeout=60)
        wait_until(lambda: relay.stats.published >= 300, what="the backlog", timeout=60)
    finally:
        relay.stop()
        writer.join(10)
        transport.close()
    assert relay.stats.outages >= 1
    delivered = _drain_ids(private_rabbitmq.url, "mcp_sync")
    assert set(delivered) == {event.message_id for event in events}  # at least once, each


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
