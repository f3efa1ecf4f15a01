"""The publishing side of the pipeline alone: CPU seconds per N notes of `weavenn watch`
(initial scan, outbox, relay with publisher confirms), of RabbitMQ, and of the PostgreSQL
backends serving the watcher, with no consumer running.

    python bench/publish.py [--notes 10000] [--runs 3]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--rabbitmq amqp://guest:guest@127.0.0.1:5672]

CPU time, not wall-clock, so other work on the machine hardly moves the figures: the watcher's
utime+stime (all its threads, start-up included) once every note is confirmed by the broker;
RabbitMQ's (beam.smp) and the watcher's PostgreSQL backends' over the same interval. RabbitMQ
is shared with whatever else runs: its figure is an upper bound. Also prints the mean message
size (what RabbitMQ stores and what the consumer parses).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parse import postgres_database
from pipeline import vhost
from vaultgen import generate

WEAVENN = Path(sys.executable).parent / "weavenn"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def thread_cpu(pid: int, seen: dict[int, float]) -> None:
    """Record the CPU seconds of each thread of `pid` (a thread that ended keeps its last)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            seen[int(task.name)] = cpu_seconds_of(task / "stat")


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def broker_pid() -> int:
    found = subprocess.run(["pgrep", "-o", "beam.smp"], capture_output=True, text=True)
    return int(found.stdout.split()[0])


class BackendCpu:
    """CPU of the PostgreSQL backends connected to one database, sampled while they live."""

    def __init__(self, database_url: str, database: str) -> None:
        self._connection = psycopg.connect(database_url, autocommit=True)
        self._database = database
        self._own = self._connection.info.backend_pid
        self.seen: dict[int, float] = {}

    def sample(self) -> None:
        rows = self._connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
            (self._database, self._own),
        ).fetchall()
        for (pid,) in rows:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                self.seen[pid] = cpu_seconds(pid)

    def pending(self) -> tuple[int, int]:
        row = self._connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def mean_payload_bytes(self) -> float:
        row = self._connection.execute("SELECT avg(octet_length(payload)) FROM outbox").fetchone()
        return float(row[0]) if row and row[0] is not None else 0.0

    def close(self) -> None:
        self._connection.close()


def by_thread(pid: int, threads: dict[int, float]) -> dict[str, float]:
    """The main thread scans, reads, parses and builds events; the others write the outbox
    (weavenn-outbox), read and mark it (weavenn-relay) and run pika's I/O loop."""
    main = threads.get(pid, 0.0)
    return {"  main thread": main, "  other threads": sum(threads.values()) - main}


def run_once(root: Path, count: int, pg_admin: str, mq: str) -> dict[str, float]:
    with postgres_database(pg_admin) as database_url, vhost(mq) as rabbitmq_url:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "RABBITMQ_URL": rabbitmq_url,
            "VAULT_PATH": str(root),
        }
        for command in (["migrate", "db"], ["bus", "setup"]):
            subprocess.run([str(WEAVENN), *command], env=env, check=True, capture_output=True)
        backends = BackendCpu(database_url, database_url.rsplit("/", 1)[1])
        broker = broker_pid()
        broker_before = cpu_seconds(broker)
        started = time.perf_counter()
        watch = subprocess.Popen(
            [str(WEAVENN), "watch"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        threads: dict[int, float] = {}
        try:
            while True:
                time.sleep(0.1)
                backends.sample()
                thread_cpu(watch.pid, threads)
                total, pending = backends.pending()
                if total >= count and pending == 0:
                    break
                if watch.poll() is not None:
                    sys.exit(f"weavenn watch exited with {watch.returncode}")
            thread_cpu(watch.pid, threads)
            figures = {
                "watcher": cpu_seconds(watch.pid),
                **by_thread(watch.pid, threads),
                "rabbitmq": cpu_seconds(broker) - broker_before,
                "postgres": sum(backends.seen.values()),
                "wall": time.perf_counter() - started,
                "bytes": backends.mean_payload_bytes(),
            }
        finally:
            watch.send_signal(signal.SIGTERM)
            watch.wait(60)
            backends.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rabbitmq", default="amqp://guest:guest@127.0.0.1:5672")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="weavenn-publish-") as tmp:
        root = Path(tmp) / "vault"
        paths = generate(root, args.notes)
        runs = [
            run_once(root, len(paths), args.pg_admin_url, args.rabbitmq) for _ in range(args.runs)
        ]
    per = 10_000 / len(paths)
    print(f"vault: {len(paths)} notes; {args.runs} run(s), medians; CPU seconds per 10k notes")
    threads = sorted({name for run in runs for name in run if name.startswith("  ")})
    for name in ("watcher", *threads, "rabbitmq", "postgres"):
        values = [run.get(name, 0.0) * per for run in runs]
        shown = ", ".join(f"{value:.2f}" for value in values)
        print(f"  {name:18} {statistics.median(values):7.2f} s  (runs: {shown})")
    print(f"  {'wall':18} {statistics.median(run['wall'] for run in runs) * per:7.2f} s")
    print(f"  {'message':18} {statistics.median(run['bytes'] for run in runs):7.0f} bytes (mean)")


if __name__ == "__main__":
    main()
