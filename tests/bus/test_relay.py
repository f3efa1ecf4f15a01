"""The outbox relay on every transport: windows, confirms, order, wake-up, pruning."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from tests.bus.harness import Bus, vault_event, wait_until
from weavenn_cli.runtime.bus.lease import RELAY_LEASE, DatabaseLease
from weavenn_cli.runtime.bus.relay import Relay
from weavenn_cli.runtime.db.models import OutboxMessage
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.errors import WeavennError


def _pending(bus: Bus) -> int:
    with bus.reader.connect() as connection:
        query = select(func.count()).where(OutboxMessage.published_at.is_(None))
        return int(connection.scalar(query) or 0)


def test_relay_publishes_the_outbox_in_windows_and_marks_what_was_confirmed(bus: Bus) -> None:
    events = [vault_event(f"notes/{i}.md") for i in range(1200)]
    bus.enqueue(events)
    relay = Relay(bus.engine, bus.transport.publisher, window=500)
    assert relay.drain() == 1200
    assert _pending(bus) == 0
    assert bus.queue("n8n_workflows").ready == 1200
    assert relay.drain() == 0  # nothing is published twice


def test_relay_thread_publishes_as_soon_as_it_is_woken(bus: Bus) -> None:
    relay = Relay(bus.engine, bus.transport.publisher, poll_interval=3600)
    relay.start()
    try:
        wait_until(lambda: relay.stats.published == 0 and _pending(bus) == 0)
        bus.enqueue([vault_event("woken.md")])
        relay.wake()
        wait_until(lambda: relay.stats.published == 1, what="the woken relay")
    finally:
        relay.stop()
    assert bus.queue("mcp_sync").ready == 1


def test_prune_deletes_only_published_rows_older_than_the_retention(embedded_bus: Bus) -> None:
    bus = embedded_bus
    bus.enqueue([vault_event(f"old/{i}.md") for i in range(3)])
    relay = Relay(bus.engine, bus.transport.publisher, retention=timedelta(hours=1))
    relay.drain()
    with bus.engine.begin() as connection:
        connection.execute(update(OutboxMessage).values(published_at=utcnow() - timedelta(hours=2)))
    bus.enqueue([vault_event("recent.md"), vault_event("pending.md")])
    Relay(bus.engine, bus.transport.publisher).publish_pending()  # publishes both
    bus.enqueue([vault_event("waiting.md")])
    assert relay.prune() == 3
    with bus.reader.connect() as connection:
        left = connection.scalar(select(func.count()).select_from(OutboxMessage))
    assert left == 3
    assert _pending(bus) == 1


def test_weavenn_relay_once_publishes_and_reports(bus: Bus, run_weavenn) -> None:
    bus.enqueue([vault_event(f"cli/{i}.md") for i in range(7)])
    result = run_weavenn("relay", "--once", env=bus.env)
    assert result.returncode == 0, result.stderr
    assert "published 7 event(s)" in result.stdout
    assert _pending(bus) == 0
    assert bus.queue("mcp_sync").ready == 7


def test_relay_declares_the_topology_before_publishing_so_nothing_is_dropped(
    rabbitmq_url: str, migrated_sqlite_url: str
) -> None:
    from weavenn_cli.runtime.bus import outbox
    from weavenn_cli.runtime.bus.transport import open_transport
    from weavenn_cli.runtime.config import load_settings
    from weavenn_cli.runtime.db.engine import make_engine, session_factory, session_scope

    settings = load_settings(None, database_url=migrated_sqlite_url, rabbitmq_url=rabbitmq_url)
    engine = make_engine(migrated_sqlite_url)
    transport = open_transport(settings, engine)  # a fresh vhost: no queue declared yet
    with session_scope(session_factory(engine)) as session:
        for i in range(3):
            outbox.enqueue(session, vault_event(f"first/{i}.md"))
    assert Relay(engine, transport.publisher).drain() == 3
    ready = {q.queue: q.ready for q in transport.status().queues}
    transport.close()
    assert ready["mcp_sync"] == 3


def test_a_second_relay_waits_while_the_first_holds_the_lease_and_takes_over_when_it_stops(
    bus: Bus,
) -> None:
    first = Relay(bus.engine, bus.transport.publisher, lease_seconds=1.5, poll_interval=0.05)
    second = Relay(bus.engine, bus.transport.publisher, lease_seconds=1.5, poll_interval=0.05)
    first.start()
    try:
        wait_until(lambda: first.holds_lease, what="the first relay's lease")
        second.start()
        bus.enqueue([vault_event(f"leased/{i}.md") for i in range(20)])
        first.wake()
        second.wake()
        wait_until(lambda: _pending(bus) == 0, what="the outbox published")
        assert (first.stats.published, second.stats.published) == (20, 0)
        assert not second.holds_lease
    finally:
        first.stop()
    try:
        wait_until(lambda: second.holds_lease, what="the second relay taking over")
        bus.enqueue([vault_event(f"later/{i}.md") for i in range(5)])
        second.wake()
        wait_until(lambda: second.stats.published == 5, what="the second relay publishing")
    finally:
        second.stop()
    assert bus.queue("mcp_sync").ready == 25  # nothing was published twice


def test_a_relay_takes_over_the_lease_a_dead_holder_left_to_expire(bus: Bus) -> None:
    dead = DatabaseLease(bus.engine, RELAY_LEASE, ttl=timedelta(seconds=1), holder="dead:1")
    assert dead.acquire()
    relay = Relay(bus.engine, bus.transport.publisher, lease_seconds=1, poll_interval=0.05)
    bus.enqueue([vault_event("after-a-crash.md")])
    with pytest.raises(WeavennError, match="dead:1"):
        relay.drain()  # `weavenn relay --once` refuses while the lease runs
    relay.start()
    try:
        wait_until(lambda: relay.stats.published == 1, what="the takeover")
    finally:
        relay.stop()
    # A relay that stops releases the lease: the next one need not wait for it to expire.
    assert DatabaseLease(bus.engine, RELAY_LEASE, ttl=timedelta(seconds=1)).current() is None
