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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
    process = subprocess.Popen(
        [str(WEAVENN), *args],
        env={**os.environ, **env},
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
        with weavenn("consume", "mcp-sync", env=env):
            time.sleep(2)  # connected and waiting
            started = time.perf_counter()
            with weavenn("watch", env=env):
                wait_for(lambda: notes_in_cache(engine) >= len(paths), timeout=3600, poll=0.05)
                initial = len(paths) / (time.perf_counter() - started)
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
