"""Routing on both transports: an event reaches the queues bound to it and no others."""

from __future__ import annotations

from tests.bus.harness import Bus, vault_event
from weavenn_cli.runtime.bus.transport import OutgoingMessage


def _ready(bus: Bus) -> dict[str, int | None]:
    return {q.queue: q.ready for q in bus.transport.status().queues}


def test_a_created_event_reaches_the_queues_bound_to_it_and_no_others(bus: Bus) -> None:
    bus.publish([vault_event("a.md", "vault.file.created")])
    assert _ready(bus) == {
        "mcp_sync": 1,
        "git_auto_commit": 1,
        "agent_tasks": 1,
        "n8n_workflows": 1,
    }


def test_deleted_and_task_events_follow_their_bindings(bus: Bus) -> None:
    bus.publish([vault_event("a.md", "vault.file.deleted")])
    publisher = bus.transport.publisher()
    publisher.publish([OutgoingMessage("t1", "task.completed", b'{"message_id": "t1"}')])
    publisher.close()
    assert _ready(bus) == {
        "mcp_sync": 1,
        "git_auto_commit": 1,
        "agent_tasks": 1,
        "n8n_workflows": 2,
    }
