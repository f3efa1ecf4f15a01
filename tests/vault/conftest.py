"""Fixtures of the vault tests: temp vaults, cache sessions on both databases, events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from weavenn_cli.runtime.db.engine import make_engine, session_factory
from weavenn_cli.runtime.db.models import OutboxMessage
from weavenn_cli.runtime.events import VaultFileEvent
from weavenn_cli.runtime.vault.publish import vault_event


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    root.mkdir()
    return root


def write(root: Path, relative: str, text: str | bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def sessions(any_migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(any_migrated_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def sqlite_sessions(migrated_sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_sqlite_url)
    yield session_factory(engine)
    engine.dispose()


class EventMaker:
    """Builds events as the watcher would, with a growing sequence."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(
        self, kind: str, path: str, text: str | None = None, old_path: str | None = None, **kw: Any
    ) -> VaultFileEvent:
        self.sequence += 1
        return vault_event(
            vault_id="test-vault",
            kind=kind,  # type: ignore[arg-type]
            path=path,
            old_path=old_path,
            sequence=kw.get("sequence", self.sequence),
            content=None if text is None else text.encode(),
            max_text_bytes=kw.get("max_text_bytes", 262_144),
            max_event_bytes=kw.get("max_event_bytes", 1_048_576),
        )


@pytest.fixture
def make_event() -> EventMaker:
    return EventMaker()


def outbox_events(factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    with factory() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    return [json.loads(row.payload) | {"_routing_key": row.routing_key} for row in rows]


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        time.sleep(0.05)
