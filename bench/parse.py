"""Parse-only throughput of the vault parser against `weavenn vault index` and against
applying vault events to the cache (what mcp-sync does per message, one transaction each),
on SQLite and PostgreSQL, measured in one run on one generated vault.

    python bench/parse.py [--notes 10000] [--runs 3] [--events 2000]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]

Prints notes/s (median of the runs) and the ratio to parse-only: how much of the parser's
speed survives hashing, writing rows, full-text indexing and resolving links.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vaultgen import generate

from weavenn_cli.runtime import schema
from weavenn_cli.runtime.db.engine import make_engine, session_factory, session_scope
from weavenn_cli.runtime.events import VaultFileEvent
from weavenn_cli.runtime.vault.cache import apply_event
from weavenn_cli.runtime.vault.parser import parse_note
from weavenn_cli.runtime.vault.publish import SerialisedEvent, serialised_vault_event

WEAVENN = Path(sys.executable).parent / "weavenn"


def parse_only(root: Path, paths: list[str]) -> float:
    started = time.perf_counter()
    for path in paths:
        parse_note(path, (root / path).read_bytes(), max_text_bytes=262_144)
    return len(paths) / (time.perf_counter() - started)


def weavenn(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(WEAVENN), *args], env={**os.environ, **env}, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"weavenn {' '.join(args)} failed: {result.stderr.strip()}")


def index_once(root: Path, count: int, database_url: str) -> float:
    env = {"DATABASE_URL": database_url, "VAULT_PATH": str(root)}
    weavenn("migrate", "db", env=env)
    started = time.perf_counter()
    weavenn("vault", "index", "--json", env=env)
    return count / (time.perf_counter() - started)


def index_sqlite(root: Path, count: int, workdir: Path, run: int) -> float:
    return index_once(root, count, f"sqlite:///{workdir / f'bench-{run}.db'}")


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    name = f"weavenn_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def index_postgres(root: Path, count: int, admin_url: str) -> float:
    with postgres_database(admin_url) as url:
        return index_once(root, count, url)


def vault_events(root: Path, paths: list[str]) -> list[VaultFileEvent]:
    return [serialised.event for serialised in serialised_events(root, paths)]


def serialised_events(root: Path, paths: Sequence[str]) -> list[SerialisedEvent]:
    """The `vault.file.created` event of every note, with its JSON, as the watcher builds them."""
    return [
        serialised_vault_event(
            vault_id="bench",
            kind="vault.file.created",
            path=path,
            sequence=sequence,
            content=(root / path).read_bytes(),
            max_text_bytes=262_144,
            max_event_bytes=1_048_576,
        )
        for sequence, path in enumerate(paths, start=1)
    ]


def apply_once(events: list[VaultFileEvent], database_url: str) -> float:
    schema.upgrade(database_url)
    engine = make_engine(database_url)
    factory = session_factory(engine)
    started = time.perf_counter()
    for event in events:
        with session_scope(factory) as session:
            apply_event(session, event)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return len(events) / elapsed


def apply_postgres(events: list[VaultFileEvent], admin_url: str) -> float:
    with postgres_database(admin_url) as url:
        return apply_once(events, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--events", type=int, default=2000, help="events applied one transaction each"
    )
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="weavenn-bench-") as tmp:
        workdir = Path(tmp)
        root = workdir / "vault"
        paths = generate(root, args.notes)
        size = sum((root / p).stat().st_size for p in paths)
        print(f"vault: {len(paths)} notes, {size / len(paths) / 1024:.1f} KiB per note on average")
        parse = [parse_only(root, paths) for _ in range(args.runs)]
        sqlite = [index_sqlite(root, len(paths), workdir, run) for run in range(args.runs)]
        postgres = [index_postgres(root, len(paths), args.pg_admin_url) for _ in range(args.runs)]
        # Events as the watcher publishes them; building them (parsing) is not timed here.
        events = vault_events(root, paths[: args.events])
        apply_sqlite = [
            apply_once(events, f"sqlite:///{workdir / f'apply-{run}.db'}")
            for run in range(args.runs)
        ]
        apply_pg = [apply_postgres(events, args.pg_admin_url) for _ in range(args.runs)]
    base = statistics.median(parse)
    print(f"{'measure':<40}{'notes/s (median)':>18}{'runs':>30}{'ratio':>8}")
    for label, values in (
        ("parse only (baseline)", parse),
        ("weavenn vault index, SQLite", sqlite),
        ("weavenn vault index, PostgreSQL", postgres),
        (f"apply {len(events)} events, SQLite", apply_sqlite),
        (f"apply {len(events)} events, PostgreSQL", apply_pg),
    ):
        runs = ", ".join(f"{v:,.0f}" for v in values)
        median = statistics.median(values)
        print(f"{label:<40}{median:>18,.0f}{runs:>30}{median / base:>8.2f}")


if __name__ == "__main__":
    main()
