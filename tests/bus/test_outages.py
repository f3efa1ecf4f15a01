"""Outages the runner waits out: a broker that is down at start, a database that goes away.

A TCP proxy owned by the test stands between the runner and the shared service, so cutting
it off never touches the service other tests use.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.bus.consumers import RecordingConsumer
from tests.bus.harness import Bus, vault_event, wait_until
from tests.bus.proxy import TcpProxy
from weavenn_cli.runtime.bus.backoff import Backoff
from weavenn_cli.runtime.bus.deadletters import DeadLetters
from weavenn_cli.runtime.bus.transport import open_transport
from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.consumers.runner import Runner
from weavenn_cli.runtime.db.engine import make_engine

pytestmark = pytest.mark.xdist_group("outages")


def _through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def _port(url: str) -> int:
    return urlsplit(url).port or 5432


@contextmanager
def _runner(bus: Bus, database_url: str, rabbitmq_url: str | None) -> Iterator[Runner]:
    """A runner whose connections go where the test says (through its proxy)."""
    import threading

    settings = load_settings(
        None, database_url=database_url, rabbitmq_url=rabbitmq_url, bus_retry_delays="0.2,0.4"
    )
    engine = make_engine(database_url)
    transport = open_transport(settings, engine)
    runner = Runner(RecordingConsumer(), transport, engine, backoff=Backoff(base=0.1, cap=0.5))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop()
        thread.join(30)
        transport.close()
        engine.dispose()
        assert not thread.is_alive()


def test_a_consumer_started_while_rabbitmq_is_down_connects_when_it_comes_up(
    rabbitmq_bus: Bus,
) -> None:
    assert rabbitmq_bus.rabbitmq_url
    events = [vault_event(f"n{i}.md") for i in range(5)]
    rabbitmq_bus.publish(events)
    with TcpProxy("127.0.0.1", _port(rabbitmq_bus.rabbitmq_url)) as proxy:
        broker_url = _through(rabbitmq_bus.rabbitmq_url, proxy)
        with _runner(rabbitmq_bus, rabbitmq_bus.database_url, broker_url):
            time.sleep(1.0)  # several connection attempts fail meanwhile
            assert rabbitmq_bus.effect_count() == 0
            proxy.start()
            wait_until(lambda: rabbitmq_bus.effect_count() == 5, what="effects after start")
    assert sorted(m for m, _, _ in rabbitmq_bus.effects()) == sorted(e.message_id for e in events)


@pytest.mark.parametrize("variant", ["rabbitmq-postgresql", "embedded-postgresql"])
def test_an_unreachable_database_is_waited_out_without_spending_retries(
    request: pytest.FixtureRequest,
    variant: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.bus.harness import make_bus

    bus = make_bus(request, variant)
    monkeypatch.setenv("TEST_HANDLER_SLEEP", "0.05")
    first = [vault_event(f"before/{i}.md") for i in range(20)]
    later = [vault_event(f"during/{i}.md") for i in range(10)]
    bus.publish(first)
    with TcpProxy("127.0.0.1", _port(bus.database_url)) as proxy:
        proxy.start()
        database_url = _through(bus.database_url, proxy)
        with _runner(bus, database_url, bus.rabbitmq_url) as runner:
            wait_until(lambda: bus.effect_count() >= 3, what="a few effects")
            proxy.stop()
            bus.publish(later)
            time.sleep(1.5)  # the runner finds the database gone and pauses
            proxy.start()
            wait_until(lambda: bus.effect_count() >= 30, what="every effect", timeout=60)
            time.sleep(0.5)  # give a wrong duplicate time to show up
    ids = [m for m, _, _ in bus.effects()]
    assert sorted(ids) == sorted(e.message_id for e in first + later)  # each exactly once
    assert runner.metrics.totals()["retried"] == 0
    assert "unreachable" in caplog.text  # the outage was seen, and waited out
    assert DeadLetters(bus.engine).list() == []
    bus.close()


def test_a_handler_slower_than_the_heartbeat_keeps_its_rabbitmq_connection(
    rabbitmq_bus: Bus, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert rabbitmq_bus.rabbitmq_url
    monkeypatch.setenv("TEST_HANDLER_SLEEP", "4")  # the broker expects a heartbeat every 1 s
    rabbitmq_bus.publish([vault_event("slow.md")])
    url = f"{rabbitmq_bus.rabbitmq_url}?heartbeat=1"
    with _runner(rabbitmq_bus, rabbitmq_bus.database_url, url) as runner:
        wait_until(lambda: runner.metrics.totals()["processed"] == 1, what="the slow message")
        wait_until(lambda: rabbitmq_bus.queue("mcp_sync").ready == 0, what="its ack")
    assert rabbitmq_bus.effect_count() == 1
    assert "lost RabbitMQ" not in caplog.text  # the connection never dropped


def test_an_embedded_lease_is_renewed_while_a_slow_handler_runs(
    request: pytest.FixtureRequest, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from tests.bus.harness import make_bus
    from weavenn_cli.runtime.bus.embedded import EmbeddedTransport

    bus = make_bus(request, "embedded-postgresql")
    started = tmp_path / "started.log"
    monkeypatch.setenv("TEST_STARTED_FILE", str(started))
    monkeypatch.setenv("TEST_HANDLER_SLEEP", "4")
    bus.publish([vault_event("slow.md")])
    runners = []
    for _ in range(2):  # a competitor waits for the lease to run out; it must not
        transport = EmbeddedTransport(bus.engine, bus.transport.topology, lease_seconds=1.5)
        runners.append(Runner(RecordingConsumer(), transport, bus.engine))
    threads = [threading.Thread(target=r.run, daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: bus.effect_count() == 1, what="the slow message")
    finally:
        for runner in runners:
            runner.stop()
        for thread in threads:
            thread.join(30)
    assert len(started.read_text().splitlines()) == 1  # handled once, by one consumer
    bus.close()
