"""The event pipeline end to end: `weavenn watch` (initial scan, relay) → RabbitMQ →
`weavenn consume mcp-sync` → PostgreSQL, against parse-only throughput in the same run.

    python bench/pipeline.py [--notes 10000] [--runs 1] [--edits 200]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--rabbitmq amqp://guest:guest@127.0.0.1:5672]

(a) parse-only throughput of the parser (bench/parse.py's baseline), notes/s, median of 3;
(b) initial index end to end: from starting `weavenn watch` on the generated vault until the
    last note is in the cache, notes/s (consumer already running);
(c) latency from saving one note to its row changing in the cache, p50 and p99 over
    `--edits` edits, one at a time, with the default debounce (DEBOUNCE_SECONDS 0.5).

Each run gets a fresh PostgreSQL database and a fresh RabbitMQ vhost, removed afterwards.

For (b) it also prints where the CPU went (user + system seconds from /proc, sampled while
it runs): the watcher process, the consumer process, the PostgreSQL backends of each (told
apart by application name) and the other backends of the run's database (autovacuum),
PostgreSQL's shared background processes (WAL writer, checkpointer...: all databases, so
other users of the server count too) and RabbitMQ's beam.smp (every vhost); then
PostgreSQL's top statements by time when pg_stat_statements is loaded by the server
(shared_preload_libraries), otherwise a note saying so.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy import Engine, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parse import parse_only, postgres_database
from vaultgen import generate

from weavenn_cli.runtime.db.engine import make_engine
from weavenn_cli.runtime.db.models import Note

WEAVENN = Path(sys.executable).parent / "weavenn"


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


@contextmanager
def weavenn(*args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    # The application name tells the PostgreSQL backends of each process apart.
    process = subprocess.Popen(
        [str(WEAVENN), *args],
        env={**os.environ, **env, "PGAPPNAME": f"weavenn-bench-{args[0]}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def notes_in_cache(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(Note)) or 0)


def content_hash(engine: Engine, path: str) -> str | None:
    with engine.connect() as connection:
        return connection.scalar(select(Note.content_hash).where(Note.path == path))


def wait_for(condition: object, timeout: float, poll: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            sys.exit(f"timed out after {timeout:.0f}s")
        time.sleep(poll)


# -- CPU accounting --------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def pids_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@dataclass
class CpuSampler:
    """Samples the CPU time of the pipeline's processes while (b) runs.

    PostgreSQL backends come and go (pool connections, the relay's): each one's last sample
    counts, so a backend that exits between two samples loses at most one interval.
    """

    admin_url: str
    database: str
    watcher: int
    consumer: int
    interval: float = 0.2
    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)
    group: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> CpuSampler:
        self._connection = psycopg.connect(self.admin_url, autocommit=True)
        # The server's own processes (no database): WAL writer, checkpointer, and so on.
        shared = self._connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname IS NULL"
        ).fetchall()
        self._fixed = {pid: "shared" for (pid,) in shared}
        self._fixed |= {pid: "rabbitmq" for pid in pids_named("beam.smp")}
        self._fixed |= {self.watcher: "watcher", self.consumer: "consumer"}
        self.sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        self._connection.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        backends = self._connection.execute(
            "SELECT pid, application_name FROM pg_stat_activity WHERE datname = %s",
            (self.database,),
        ).fetchall()
        groups = self._fixed | {pid: BACKEND_GROUPS.get(app, "postgres") for pid, app in backends}
        starting = not self.first
        for pid, name in groups.items():
            seconds = cpu_seconds(pid)
            if seconds is None:
                continue
            # A backend born during (b) counts from zero; one already there, from now.
            new_backend = name.startswith("postgres") and not starting
            self.first.setdefault(pid, 0.0 if new_backend else seconds)
            self.last[pid] = seconds
            self.group[pid] = name

    def totals(self) -> dict[str, float]:
        sums: dict[str, float] = {}
        for pid, name in self.group.items():
            sums[name] = sums.get(name, 0.0) + self.last[pid] - self.first[pid]
        return sums


BACKEND_GROUPS = {
    "weavenn-bench-watch": "postgres-watch",
    "weavenn-bench-consume": "postgres-consume",
}
CPU_LABELS = {
    "watcher": "weavenn watch (scan, outbox, relay)",
    "consumer": "weavenn consume mcp-sync",
    "postgres-watch": "PostgreSQL backends of the watcher",
    "postgres-consume": "PostgreSQL backends of the consumer",
    "postgres": "PostgreSQL, other backends of the run's database",
    "shared": "PostgreSQL shared processes (all databases)",
    "rabbitmq": "RabbitMQ beam.smp (all vhosts)",
}


def print_cpu(totals: dict[str, float], notes: int) -> None:
    print(f"    CPU of (b), {notes:,} notes:")
    for name, label in CPU_LABELS.items():
        seconds = totals.get(name, 0.0)
        print(f"      {label:<52}{seconds:7.1f} s {1000 * seconds / notes:6.2f} ms/note")
    total = sum(totals.values())
    print(f"      {'total':<52}{total:7.1f} s {1000 * total / notes:6.2f} ms/note")


def reset_statements(database_url: str) -> str | None:
    """Starts pg_stat_statements afresh in the run's database; why not, when it cannot."""
    try:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            connection.execute("SELECT pg_stat_statements_reset()")
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0]
    return None


def top_statements(database_url: str, limit: int = 12) -> list[tuple[float, int, str]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT total_exec_time, calls, query FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "ORDER BY total_exec_time DESC LIMIT %s",
            (limit,),
        ).fetchall()
    return [(float(ms), int(calls), " ".join(query.split())) for ms, calls, query in rows]


def print_statements(rows: list[tuple[float, int, str]]) -> None:
    total = sum(ms for ms, _, _ in rows) or 1.0
    print("    PostgreSQL top statements of (b) (pg_stat_statements, execution time):")
    for ms, calls, query in rows:
        print(f"      {ms / 1000:7.2f} s {100 * ms / total:5.1f} % {calls:7,} calls  {query[:90]}")


# -- the run ---------------------------------------------------------------------------------


def pipeline_run(root: Path, paths: list[str], edits: int, pg_admin: str, mq: str) -> tuple:
    with postgres_database(pg_admin) as database_url, vhost(mq) as rabbitmq_url:
        env = {"DATABASE_URL": database_url, "RABBITMQ_URL": rabbitmq_url, "VAULT_PATH": str(root)}
        subprocess.run(
            [str(WEAVENN), "migrate", "db"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [str(WEAVENN), "bus", "setup"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        engine = make_engine(database_url)
        no_statements = reset_statements(database_url)
        database = database_url.rsplit("/", 1)[1]
        with weavenn("consume", "mcp-sync", env=env) as consumer:
            time.sleep(2)  # connected and waiting
            started = time.perf_counter()
            with weavenn("watch", env=env) as watcher:
                with CpuSampler(pg_admin, database, watcher.pid, consumer.pid) as sampler:
                    wait_for(lambda: notes_in_cache(engine) >= len(paths), 3600, poll=0.05)
                initial = len(paths) / (time.perf_counter() - started)
                print(f"(b) run: {initial:,.0f} notes/s")
                print_cpu(sampler.totals(), len(paths))
                if no_statements is None:
                    print_statements(top_statements(database_url))
                else:
                    print(f"    no pg_stat_statements: {no_statements}")
                latencies = edit_latencies(root, paths, edits, engine)
        engine.dispose()
    return initial, latencies


def edit_latencies(root: Path, paths: list[str], edits: int, engine: Engine) -> list[float]:
    """Save one note, wait until its row has the new content; one edit at a time."""
    latencies = []
    for number in range(edits):
        path = paths[(number * 37) % len(paths)]
        before = content_hash(engine, path)
        note = root / path
        saved = time.perf_counter()
        note.write_text(note.read_text(encoding="utf-8") + f"\nedit {number}\n", encoding="utf-8")
        wait_for(lambda p=path, b=before: content_hash(engine, p) != b, timeout=60)
        latencies.append(time.perf_counter() - saved)
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1, help="runs of (b) and (c)")
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rabbitmq", default="amqp://guest:guest@127.0.0.1:5672")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="weavenn-pipeline-") as tmp:
        root = Path(tmp) / "vault"
        paths = generate(root, args.notes)
        print(f"vault: {len(paths)} notes")
        parse = statistics.median(parse_only(root, paths) for _ in range(3))
        initial, latencies = [], []
        for _ in range(args.runs):
            rate, edits = pipeline_run(root, paths, args.edits, args.pg_admin_url, args.rabbitmq)
            initial.append(rate)
            latencies += edits
    end_to_end = statistics.median(initial)
    print(f"(a) parse only:               {parse:8,.0f} notes/s (median of 3)")
    print(
        f"(b) initial index end to end: {end_to_end:8,.0f} notes/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in initial)}); ratio to (a) "
        f"{end_to_end / parse:.2f}"
    )
    print(
        f"(c) save to row, {len(latencies)} edits: p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
