"""mcp-sync alone: the consumer's half of bench/pipeline.py's (b), without the watcher.

    python bench/consume.py [--notes 3000] [--runs 3]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--rabbitmq amqp://guest:guest@127.0.0.1:5672]

Per run, on a fresh PostgreSQL database and RabbitMQ vhost: the `vault.file.created` events
of a generated vault are published first, then `weavenn consume mcp-sync` starts and is timed
until the last note is in the cache. Prints notes/s, the CPU seconds of the consumer process
(its start-up included) and of its PostgreSQL backends, and a digest of every link's
resolution, which must not change with the code being measured.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parse import postgres_database, serialised_events
from pipeline import cpu_seconds, notes_in_cache, vhost
from vaultgen import generate

from weavenn_cli.runtime import schema
from weavenn_cli.runtime.bus.transport import OutgoingMessage, open_transport
from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.db.engine import make_engine

WEAVENN = Path(sys.executable).parent / "weavenn"
APPLICATION = "weavenn-bench-consume-alone"
LINKS_DIGEST = text(
    "SELECT count(*), count(resolved_path), md5(string_agg(notes.path || ':' || "
    "note_links.position || ':' || coalesce(note_links.resolved_path, '-'), ',' "
    "ORDER BY notes.path, note_links.position)) "
    "FROM note_links JOIN notes ON notes.id = note_links.note_id"
)


def vault_messages(count: int) -> list[OutgoingMessage]:
    with tempfile.TemporaryDirectory(prefix="weavenn-consume-") as tmp:
        root = Path(tmp) / "vault"
        return [
            OutgoingMessage(
                serialised.event.message_id,
                serialised.event.routing_key,
                serialised.payload.encode(),
            )
            for serialised in serialised_events(root, generate(root, count))
        ]


def backend_cpu(admin: psycopg.Connection, seen: dict[int, float]) -> None:
    """The consumer's backends' CPU so far (each one's last sample counts)."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APPLICATION,)
    ).fetchall()
    for (pid,) in rows:
        seconds = cpu_seconds(pid)
        if seconds is not None:
            seen[pid] = seconds


def run_once(messages: list[OutgoingMessage], pg_admin: str, mq: str) -> tuple[float, ...]:
    with postgres_database(pg_admin) as database_url, vhost(mq) as rabbitmq_url:
        schema.upgrade(database_url)
        engine = make_engine(database_url)
        transport = open_transport(
            load_settings(None, database_url=database_url, rabbitmq_url=rabbitmq_url), engine
        )
        transport.setup()
        publisher = transport.publisher()
        for start in range(0, len(messages), 500):
            publisher.publish(messages[start : start + 500])
        publisher.close()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "RABBITMQ_URL": rabbitmq_url,
            "PGAPPNAME": APPLICATION,
        }
        backends: dict[int, float] = {}
        with psycopg.connect(pg_admin, autocommit=True) as admin:
            consumer = subprocess.Popen(
                [str(WEAVENN), "consume", "mcp-sync"], env=env, stderr=subprocess.DEVNULL
            )
            started = time.perf_counter()
            while notes_in_cache(engine) < len(messages):
                backend_cpu(admin, backends)
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            backend_cpu(admin, backends)
            consumer_cpu = cpu_seconds(consumer.pid) or 0.0
            consumer.send_signal(signal.SIGTERM)
            consumer.wait(60)
        with engine.connect() as connection:
            links, resolved, digest = connection.execute(LINKS_DIGEST).one()
        engine.dispose()
        transport.close()
    print(
        f"run: {len(messages) / elapsed:,.0f} notes/s; CPU: consumer {consumer_cpu:.2f} s, "
        f"its PostgreSQL backends {sum(backends.values()):.2f} s; links {links:,}, "
        f"resolved {resolved:,}, digest {digest}; load {os.getloadavg()[0]:.1f}"
    )
    return len(messages) / elapsed, consumer_cpu, sum(backends.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rabbitmq", default="amqp://guest:guest@127.0.0.1:5672")
    args = parser.parse_args()
    messages = vault_messages(args.notes)
    runs = [run_once(messages, args.pg_admin_url, args.rabbitmq) for _ in range(args.runs)]
    rate, consumer, postgres = (statistics.median(column) for column in zip(*runs, strict=True))
    count = len(messages)
    print(
        f"mcp-sync alone, {count:,} notes, median of {len(runs)}: {rate:,.0f} notes/s; "
        f"consumer {1000 * consumer / count:.2f} ms/note, "
        f"its PostgreSQL backends {1000 * postgres / count:.2f} ms/note"
    )


if __name__ == "__main__":
    main()
