"""The outbox and inbox on both databases: events commit or roll back with their cause."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from weavenn_cli.runtime.bus import outbox
from weavenn_cli.runtime.db.engine import make_engine, session_factory, session_scope
from weavenn_cli.runtime.db.models import InboxEntry, OutboxMessage
from weavenn_cli.runtime.events import TaskEvent, VaultFileEvent, derive_message_id


def _event(message_id: str = "m1") -> TaskEvent:
    return TaskEvent(
        message_id=message_id, event_type="task.created", task_id="t1", project_id="p1"
    )


def test_enqueued_event_commits_with_the_transaction(any_migrated_url: str) -> None:
    factory = session_factory(make_engine(any_migrated_url))
    with session_scope(factory) as session:
        assert outbox.enqueue(session, _event(), headers={"source": "test"}) is True
    with factory() as session:
        row = session.scalars(select(OutboxMessage)).one()
    assert row.routing_key == "task.created"
    assert row.published_at is None and row.attempts == 0
    assert json.loads(row.payload)["task_id"] == "t1"
    assert row.headers == {"source": "test"}


def test_enqueued_event_rolls_back_with_its_cause(any_migrated_url: str) -> None:
    factory = session_factory(make_engine(any_migrated_url))
    with pytest.raises(RuntimeError), session_scope(factory) as session:
        outbox.enqueue(session, _event())
        raise RuntimeError("the change failed")
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_same_message_id_is_enqueued_once(any_migrated_url: str) -> None:
    factory = session_factory(make_engine(any_migrated_url))
    with session_scope(factory) as session:
        assert outbox.enqueue(session, _event("dup")) is True
    with session_scope(factory) as session:
        assert outbox.enqueue(session, _event("dup")) is False
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_inbox_records_what_a_consumer_applied(any_migrated_url: str) -> None:
    factory = session_factory(make_engine(any_migrated_url))
    with session_scope(factory) as session:
        assert not outbox.already_processed(session, "mcp_sync", "m1")
        outbox.record_processed(session, "mcp_sync", "m1")
    with factory() as session:
        assert outbox.already_processed(session, "mcp_sync", "m1")
        assert not outbox.already_processed(session, "git_auto_commit", "m1")
        assert session.scalar(select(func.count()).select_from(InboxEntry)) == 1


def test_derived_message_ids_are_stable_and_distinct() -> None:
    a = derive_message_id("vault", "vault.file.updated", "n.md", "hash", 1)
    assert a == derive_message_id("vault", "vault.file.updated", "n.md", "hash", 1)
    assert a != derive_message_id("vault", "vault.file.updated", "n.md", "hash", 2)
    assert len(a) == 32


def test_vault_event_routing_key_is_its_type() -> None:
    event = VaultFileEvent(
        message_id="x",
        event_type="vault.file.moved",
        file_path="b.md",
        old_path="a.md",
        vault_id="v",
    )
    assert event.routing_key == "vault.file.moved"
    assert VaultFileEvent.model_validate_json(event.model_dump_json()) == event


def test_missing_headers_are_sql_null_not_json_null(any_migrated_url: str) -> None:
    from sqlalchemy import text

    factory = session_factory(make_engine(any_migrated_url))
    with session_scope(factory) as session:
        outbox.enqueue(session, _event("no-headers"))
    with factory() as session:
        assert session.scalar(text("SELECT count(*) FROM outbox WHERE headers IS NULL")) == 1
