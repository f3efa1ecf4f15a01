"""The mcp-sync consumer, called as the runner calls it: inside a real transaction."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from weavenn_cli.runtime.consumers.base import Delivery, PermanentError
from weavenn_cli.runtime.consumers.mcp_sync import McpSyncConsumer
from weavenn_cli.runtime.db.engine import session_scope
from weavenn_cli.runtime.vault import queries

Factory = sessionmaker[Session]


def deliver(factory: Factory, body: dict, routing_key: str = "vault.file.created") -> None:
    delivery = Delivery(
        message_id=str(body.get("message_id", "m")), routing_key=routing_key, body=body
    )
    with session_scope(factory) as session:
        McpSyncConsumer().handle(session, delivery)


def test_consumer_contract() -> None:
    assert (McpSyncConsumer.name, McpSyncConsumer.queue) == ("mcp-sync", "mcp_sync")
    assert McpSyncConsumer.bindings == ("vault.file.*",)


def test_a_delivered_event_lands_in_the_cache(sessions: Factory, make_event) -> None:
    event = make_event("vault.file.created", "n.md", "# Hello\n#tag")
    deliver(sessions, event.model_dump(mode="json"))
    deliver(
        sessions,
        make_event("vault.file.moved", "m.md", "# Hello\n#tag", old_path="n.md").model_dump(
            mode="json"
        ),
    )
    with sessions() as session:
        note = queries.note_details(session, "m.md")
        assert note is not None and note.tags == ["tag"]
        assert queries.note_details(session, "n.md") is None


@pytest.mark.parametrize(
    "body",
    [
        {"message_id": "m", "event_type": "vault.file.created"},
        {
            "message_id": "m",
            "event_type": "vault.file.exploded",
            "file_path": "a.md",
            "vault_id": "v",
        },
        {
            "message_id": "m",
            "event_type": "vault.file.created",
            "file_path": "a.md",
            "vault_id": "v",
        },
        {
            "message_id": "m",
            "event_type": "vault.file.moved",
            "file_path": "a.md",
            "vault_id": "v",
            "content_hash": "h",
            "note": {"title": "t"},
        },
        {
            "message_id": "m",
            "event_type": "vault.file.updated",
            "file_path": "a.md",
            "vault_id": "v",
            "content_hash": "h",
            "note": {"title": 5, "links": "no"},
        },
    ],
    ids=["missing-fields", "unknown-type", "no-note", "move-without-old-path", "malformed-note"],
)
def test_a_malformed_body_is_a_permanent_error(sqlite_sessions: Factory, body: dict) -> None:
    with pytest.raises(PermanentError):
        deliver(sqlite_sessions, body)


def test_a_batch_refuses_a_malformed_message_and_applies_the_others(
    sessions: Factory, make_event
) -> None:
    good = [make_event("vault.file.created", f"n{i}.md", f"# N{i}\n[[n0]]") for i in range(3)]
    deliveries = [
        Delivery(message_id=e.message_id, routing_key=e.routing_key, body=e.model_dump(mode="json"))
        for e in good
    ]
    bad = Delivery(message_id="bad", routing_key="vault.file.created", body={"message_id": "bad"})
    with session_scope(sessions) as session:
        failures = McpSyncConsumer().handle_batch(session, [deliveries[0], bad, *deliveries[1:]])
    assert list(failures) == ["bad"] and isinstance(failures["bad"], PermanentError)
    with sessions() as session:
        note = queries.note_details(session, "n2.md")
        assert note is not None and note.links[0].resolved_path == "n0.md"
