"""Bus throughput: the outbox relay and the consumer runner, each against a naive baseline
measured in the same run, on RabbitMQ (a vhost of its own) with PostgreSQL, and on the
embedded transport with SQLite.

    python bench/bus.py [--events 5000] [--runs 3]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--rabbitmq amqp://guest:guest@127.0.0.1:5672]

(a) relay: outbox → broker with a window of publisher confirms, against one synchronous
    confirm per message (pika's BlockingChannel in confirm mode), events/s;
(b) runner: events → effect row + inbox row → ack, against a loop that commits and acks one
    message at a time as the design's consumer sketch does, events/s.

Prints the median of the runs and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import pika
import psycopg
from psycopg import sql
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.orm import Session

from weavenn_cli.runtime import schema
from weavenn_cli.runtime.bus import outbox
from weavenn_cli.runtime.bus.rabbitmq import properties
from weavenn_cli.runtime.bus.relay import Relay
from weavenn_cli.runtime.bus.transport import OutgoingMessage, open_transport
from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.consumers.base import Delivery
from weavenn_cli.runtime.consumers.runner import Runner
from weavenn_cli.runtime.db.engine import make_engine, session_factory, session_scope
from weavenn_cli.runtime.events import VaultFileEvent, derive_message_id

metadata = MetaData()
effects = Table(
    "bench_effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),
)


class BenchConsumer:
    name: ClassVar[str] = "bench"
    queue: ClassVar[str] = "mcp_sync"
    bindings: ClassVar[tuple[str, ...]] = ("vault.file.*",)

    def handle(self, session: Session, delivery: Delivery) -> None:
        session.execute(insert(effects).values(message_id=delivery.message_id))


def events(count: int, run: str) -> list[VaultFileEvent]:
    return [
        VaultFileEvent(
            message_id=derive_message_id(run, i),
            event_type="vault.file.updated",
            file_path=f"notes/{i}.md",
            vault_id="bench",
            frontmatter={"tags": ["bench"], "title": f"Note {i}"},
        )
        for i in range(count)
    ]


@contextmanager
def postgres(admin_url: str) -> Iterator[str]:
    name = f"weavenn_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def vhost(base_url: str) -> Iterator[str]:
    name = f"weavenn-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
    )
    try:
        yield f"{base_url.rstrip('/')}/{name}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=True)


def fresh_bus(database_url: str, rabbitmq_url: str | None) -> tuple[object, object]:
    schema.upgrade(database_url)
    engine = make_engine(database_url)
    metadata.create_all(engine)
    settings = load_settings(None, database_url=database_url, rabbitmq_url=rabbitmq_url)
    transport = open_transport(settings, engine)
    transport.setup()
    return engine, transport


def fill_outbox(engine: object, batch: list[VaultFileEvent]) -> None:
    with session_scope(session_factory(engine)) as session:  # type: ignore[arg-type]
        for event in batch:
            outbox.enqueue(session, event)


def relay_windowed(engine: object, transport: object, batch: list[VaultFileEvent]) -> float:
    fill_outbox(engine, batch)
    relay = Relay(engine, transport.publisher, window=500)  # type: ignore[arg-type, attr-defined]
    started = time.perf_counter()
    published = relay.drain()
    elapsed = time.perf_counter() - started
    assert published == len(batch), published
    return len(batch) / elapsed


def relay_one_confirm_each(rabbitmq_url: str, batch: list[VaultFileEvent]) -> float:
    """Baseline: read nothing, just publish each message and wait for its confirm."""
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    channel.confirm_delivery()
    messages = [
        OutgoingMessage(e.message_id, e.routing_key, e.model_dump_json().encode()) for e in batch
    ]
    started = time.perf_counter()
    for message in messages:
        channel.basic_publish(
            "weave-nn.events", message.routing_key, message.body, properties(message)
        )
    elapsed = time.perf_counter() - started
    connection.close()
    return len(batch) / elapsed


def purge(rabbitmq_url: str | None, engine: object) -> None:
    if rabbitmq_url:
        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
        channel = connection.channel()
        for queue in ("mcp_sync", "git_auto_commit", "agent_tasks", "n8n_workflows"):
            channel.queue_purge(queue)
        connection.close()
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql("DELETE FROM bus_messages")
        conn.exec_driver_sql("DELETE FROM bench_effects")
        conn.exec_driver_sql("DELETE FROM inbox")


def effect_count(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.exec_driver_sql("SELECT count(*) FROM bench_effects").scalar() or 0)


def runner_throughput(engine: object, transport: object, batch: list[VaultFileEvent]) -> float:
    transport.publisher().publish(  # type: ignore[attr-defined]
        [OutgoingMessage(e.message_id, e.routing_key, e.model_dump_json().encode()) for e in batch]
    )
    runner = Runner(BenchConsumer(), transport, engine, prefetch=50)  # type: ignore[arg-type]
    thread = threading.Thread(target=runner.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    while effect_count(engine) < len(batch):
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    runner.stop()
    thread.join(30)
    return len(batch) / elapsed


def naive_consumer(rabbitmq_url: str, engine: object, batch: list[VaultFileEvent]) -> float:
    """Baseline: per message, one transaction (effect + inbox), commit, then ack."""
    import json

    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=50)
    for e in batch:
        channel.basic_publish("weave-nn.events", e.routing_key, e.model_dump_json().encode())
    sessions = session_factory(engine)  # type: ignore[arg-type]
    started = time.perf_counter()
    for done, (method, _props, body) in enumerate(channel.consume("mcp_sync"), start=1):
        message_id = json.loads(body)["message_id"]
        with session_scope(sessions) as session:
            if not outbox.already_processed(session, "naive", message_id):
                session.execute(insert(effects).values(message_id=message_id))
                outbox.record_processed(session, "naive", message_id)
        channel.basic_ack(method.delivery_tag)
        if done == len(batch):
            break
    elapsed = time.perf_counter() - started
    channel.cancel()
    connection.close()
    return len(batch) / elapsed


def median_of(runs: int, measure: Callable[[int], float]) -> float:
    return statistics.median(measure(run) for run in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rabbitmq", default="amqp://guest:guest@127.0.0.1:5672")
    args = parser.parse_args()
    n = args.events
    print(f"{n} events per run, median of {args.runs} runs")

    with postgres(args.pg_admin_url) as pg_url, vhost(args.rabbitmq) as mq_url:
        engine, transport = fresh_bus(pg_url, mq_url)

        def windowed(run: int) -> float:
            purge(mq_url, engine)
            return relay_windowed(engine, transport, events(n, f"w{run}"))

        def one_by_one(run: int) -> float:
            purge(mq_url, engine)
            return relay_one_confirm_each(mq_url, events(n, f"s{run}"))

        def runner(run: int) -> float:
            purge(mq_url, engine)
            return runner_throughput(engine, transport, events(n, f"r{run}"))

        def naive(run: int) -> float:
            purge(mq_url, engine)
            return naive_consumer(mq_url, engine, events(n, f"n{run}"))

        report(
            "(a) relay, RabbitMQ + PostgreSQL",
            median_of(args.runs, windowed),
            "one confirm per message",
            median_of(args.runs, one_by_one),
        )
        report(
            "(b) runner, RabbitMQ + PostgreSQL",
            median_of(args.runs, runner),
            "commit+ack per message",
            median_of(args.runs, naive),
        )
        transport.close()  # type: ignore[attr-defined]

    with tempfile.TemporaryDirectory() as folder:
        sqlite_url = f"sqlite:///{Path(folder) / 'bench.db'}"
        engine, transport = fresh_bus(sqlite_url, None)

        def embedded_relay(run: int) -> float:
            purge(None, engine)
            return relay_windowed(engine, transport, events(n, f"e{run}"))

        def embedded_runner(run: int) -> float:
            purge(None, engine)
            return runner_throughput(engine, transport, events(n, f"f{run}"))

        relay_rate = median_of(args.runs, embedded_relay)
        runner_rate = median_of(args.runs, embedded_runner)
        print(
            f"(c) embedded transport, SQLite: relay {relay_rate:,.0f} events/s "
            f"(fan-out to 4 queues), runner {runner_rate:,.0f} events/s"
        )


def report(name: str, rate: float, baseline_name: str, baseline: float) -> None:
    print(
        f"{name}: {rate:,.0f} events/s; baseline ({baseline_name}) {baseline:,.0f} events/s; "
        f"ratio {rate / baseline:.1f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
