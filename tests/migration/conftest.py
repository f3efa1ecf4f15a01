"""Fixtures of the data-migration tests: task rows stored as each engine stores them, and a
TCP proxy the test can cut to make a database unreachable."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import PG_HOST, PG_PORT

TASK_COLUMNS = (
    "id",
    "project_id",
    "title",
    "status",
    "due_date",
    "completed",
    "created_at",
    "tags",
    "updated_at",
)
BASE_TIME = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def task_rows(count: int, start: int = 0) -> list[tuple[Any, ...]]:
    """Tasks as SQLAlchemy stores them in SQLite: UTC text timestamps, 0/1, JSON text."""
    rows = []
    for i in range(start, start + count):
        moment = BASE_TIME + timedelta(minutes=i, microseconds=i)
        text = moment.strftime("%Y-%m-%d %H:%M:%S.%f")
        due = (moment + timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S.%f") if i % 3 else None
        rows.append(
            (
                str(uuid.UUID(int=(i * 2654435761) % (1 << 128))),
                f"project-{i % 7}",
                f"Task {i} — ünïcode ✓",
                ("todo", "doing", "done")[i % 3],
                due,
                i % 2,
                text,
                json.dumps(["urgent", "home"][: i % 3]),
                text,
            )
        )
    return rows


def insert_sqlite(url: str, rows: Sequence[Sequence[Any]], table: str = "tasks") -> None:
    columns = TASK_COLUMNS if table == "tasks" else None
    assert columns is not None
    with sqlite3.connect(sqlite_path(url)) as connection:
        placeholders = ", ".join("?" * len(columns))
        connection.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows
        )


def sqlite_query(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(sqlite_path(url)) as connection:
        return connection.execute(sql, params).fetchall()


def pg_query(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(sql, params or None)
        return cursor.fetchall() if cursor.description else []


class TcpProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL; `cut()` drops every connection and refuses
    new ones, `restore()` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def url_for(self, pg_url: str) -> str:
        return pg_url.replace(f"{PG_HOST}:{PG_PORT}", f"127.0.0.1:{self.port}")


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy((PG_HOST, PG_PORT))
    yield proxy
    proxy.cut()
