"""The least CPU bench/pipeline.py's (b) can cost on this machine: its mandatory parts alone,
with nothing of the pipeline around them, against (a) measured in the same run.

    python bench/floor.py [--notes 10000]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--rabbitmq amqp://guest:guest@127.0.0.1:5672]

(b) cannot do less than this for every note: parse it (the watcher), carry its event through
RabbitMQ (stored durably in the four queues bound to `vault.file.*`, taken from `mcp_sync` and
acknowledged) and store it in PostgreSQL (the row with its full-text vector and index, its
tags, headings and links). Each part is measured alone, in CPU seconds read from /proc:

1. parsing: bench/parse.py's baseline (read and parse every file), which is also (a);
2. the broker: the events published with the relay's windowed confirms, then drained from
   `mcp_sync` by a bare pika consumer (prefetch 250, one ack per 250): RabbitMQ's beam.smp
   and this process;
3. the store: mcp-sync's own set-based writes (COPY), 250 notes per transaction, every link
   target known in advance (no late resolution), no inbox, no claims: the PostgreSQL backend
   and this process.

Left out, though (b) needs them as well: the watcher's durable outbox, the inbox that makes a
redelivery harmless, decoding the JSON, resolving links to notes of later batches. The sum is
a lower bound of (b)'s CPU per note; on N cores fully used, (b) is at most N / sum notes/s,
and (b)/(a) at most that over (a). beam.smp serves every vhost: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pika
import psycopg
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parse import parse_only, postgres_database, serialised_events
from pipeline import cpu_seconds, pids_named, vhost
from vaultgen import generate

from weavenn_cli.runtime import schema
from weavenn_cli.runtime.bus.transport import OutgoingMessage, open_transport
from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.db.engine import make_engine, session_scope
from weavenn_cli.runtime.events import VaultFileEvent
from weavenn_cli.runtime.vault.cache import Resolver, _statistics, note_from_event, store_notes

BATCH = 250
APPLICATION = "weavenn-bench-floor"


def broker_cpu() -> float:
    return sum(cpu_seconds(pid) or 0.0 for pid in pids_named("beam.smp"))


def parse_cpu(root: Path, paths: list[str]) -> tuple[float, float]:
    """(a) in notes/s (median of 3) and the CPU seconds of one pass."""
    rates, seconds = [], []
    for _ in range(3):
        started = time.process_time()
        rates.append(parse_only(root, paths))
        seconds.append(time.process_time() - started)
    return statistics.median(rates), statistics.median(seconds)


def broker_floor(
    events: list[tuple[VaultFileEvent, bytes]], pg_admin: str, mq: str
) -> tuple[float, float]:
    """CPU seconds of RabbitMQ and of its two clients to carry every event once."""
    messages = [
        OutgoingMessage(event.message_id, event.routing_key, payload) for event, payload in events
    ]
    with postgres_database(pg_admin) as database_url, vhost(mq) as rabbitmq_url:
        schema.upgrade(database_url)
        engine = make_engine(database_url)
        transport = open_transport(
            load_settings(None, database_url=database_url, rabbitmq_url=rabbitmq_url), engine
        )
        publisher = transport.publisher()  # declares the topology first
        broker, clients = broker_cpu(), time.process_time()
        for start in range(0, len(messages), 500):
            publisher.publish(messages[start : start + 500])
        drain(rabbitmq_url, "mcp_sync", len(messages))
        broker, clients = broker_cpu() - broker, time.process_time() - clients
        publisher.close()
        transport.close()
        engine.dispose()
    return broker, clients


def drain(rabbitmq_url: str, queue: str, count: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=BATCH)
    deliveries = channel.consume(queue, inactivity_timeout=30)
    for received, (method, _properties, _body) in enumerate(deliveries, start=1):
        if method is None:
            raise SystemExit(f"{queue}: {received - 1} of {count} messages arrived")
        if received % BATCH == 0 or received == count:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if received == count:
            break
    channel.cancel()
    connection.close()


def store_floor(
    events: list[tuple[VaultFileEvent, bytes]], paths: list[str], pg_admin: str
) -> tuple[float, float]:
    """CPU seconds of the PostgreSQL backend and of this process to store every note."""
    notes = [note_from_event(event) for event, _ in events]
    resolver = Resolver(paths)
    with postgres_database(pg_admin) as database_url:
        schema.upgrade(database_url)
        engine = make_engine(database_url, connect_args={"application_name": APPLICATION})
        factory = sessionmaker(engine)
        with psycopg.connect(pg_admin, autocommit=True) as admin:
            client = time.process_time()
            for start in range(0, len(notes), BATCH):
                with session_scope(factory) as session:
                    created = store_notes(session, notes[start : start + BATCH], resolver)
                    _statistics.grew(session, len(created))
            client = time.process_time() - client
            pids = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APPLICATION,)
            ).fetchall()
            backend = sum(cpu_seconds(pid) or 0.0 for (pid,) in pids)
        engine.dispose()
    return backend, client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rabbitmq", default="amqp://guest:guest@127.0.0.1:5672")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="weavenn-floor-") as tmp:
        root = Path(tmp) / "vault"
        paths = generate(root, args.notes)
        parse_rate, parse_seconds = parse_cpu(root, paths)
        events = [(e.event, e.payload.encode()) for e in serialised_events(root, paths)]
    broker, broker_clients = broker_floor(events, args.pg_admin_url, args.rabbitmq)
    backend, store_client = store_floor(events, paths, args.pg_admin_url)
    parts = {
        "parse (read and parse every file)": parse_seconds,
        "RabbitMQ beam.smp (publish to 4 queues, drain 1)": broker,
        "broker clients (relay publisher, bare pika consumer)": broker_clients,
        "PostgreSQL backend (store notes, tags, headings, links)": backend,
        "store client (rows, COPY)": store_client,
    }
    count = len(paths)
    total = sum(parts.values())
    print(f"{count:,} notes; CPU seconds of each mandatory part, alone:")
    for label, seconds in parts.items():
        print(f"  {label:58} {seconds:6.2f} s  {seconds / count * 1000:6.3f} ms/note")
    print(f"  {'sum':58} {total:6.2f} s  {total / count * 1000:6.3f} ms/note")
    best = cores * count / total
    print(f"(a) parse only: {parse_rate:,.0f} notes/s")
    print(
        f"(b) at best, {cores} cores fully used on these parts alone: {best:,.0f} notes/s, "
        f"{best / parse_rate:.2f} x (a); load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
