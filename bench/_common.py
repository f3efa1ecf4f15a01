"""What both benchmarks share: realistic task rows in SQLite, scratch PostgreSQL databases."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from weavenn_cli.runtime import schema

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
COLUMNS = "id, project_id, title, status, due_date, completed, created_at, tags, updated_at"
WORDS = [
    *("review", "draft", "report", "migrate", "index", "vault", "note", "link", "tag"),
    *("sync", "backup", "deploy", "cluster", "release", "fix", "test", "write", "plan"),
    *("meeting", "budget", "design", "query", "cache", "queue", "worker"),
]
TAGS = ["urgent", "home", "work", "later", "waiting", "idea", "ops", "docs", "bug", "q3"]
START = datetime(2023, 1, 1, tzinfo=UTC)


def sqlite_text(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC timestamp in SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def task_rows(count: int, seed: int = 1) -> Iterator[tuple[object, ...]]:
    rng = random.Random(seed)
    for _ in range(count):
        created = START + timedelta(
            seconds=rng.randrange(2 * 365 * 86400), microseconds=rng.randrange(10**6)
        )
        status = rng.choices(["todo", "doing", "done", "blocked"], [40, 15, 40, 5])[0]
        due = created + timedelta(days=rng.randrange(1, 60)) if rng.random() < 0.4 else None
        tags = rng.sample(TAGS, rng.randrange(0, 4))
        yield (
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            f"project-{rng.randrange(200):03d}",
            " ".join(rng.choices(WORDS, k=rng.randrange(3, 10))).capitalize(),
            status,
            sqlite_text(due) if due else None,
            1 if status == "done" else 0,
            sqlite_text(created),
            json.dumps(tags),
            sqlite_text(created + timedelta(seconds=rng.randrange(0, 30 * 86400))),
        )


def make_sqlite(path: Path, count: int) -> str:
    """A SQLite database at head holding `count` tasks (reused when already there)."""
    url = f"sqlite:///{path}"
    if path.exists():
        with sqlite3.connect(path) as connection:
            if connection.execute("SELECT count(*) FROM tasks").fetchone()[0] == count:
                schema.upgrade(url)  # a file kept from an older checkout
                return url
        path.unlink()
    schema.upgrade(url)
    with sqlite3.connect(path) as connection:
        connection.executemany(
            f"INSERT INTO tasks ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", task_rows(count)
        )
    return url


@contextmanager
def scratch_pg(name: str) -> Iterator[str]:
    """An empty PostgreSQL database at head, dropped afterwards."""
    database = f"weavenn_bench_{name}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    try:
        schema.upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)
