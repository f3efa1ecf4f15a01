"""`weavenn dlq` on both transports: list, show, replay to the queue it died in, purge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bus.consumers import RecordingConsumer
from tests.bus.harness import Bus, vault_event, wait_until
from weavenn_cli.runtime.bus.deadletters import DeadLetters


def _kill_messages(bus: Bus, *paths: str) -> None:
    """Run the recorder until every message of `paths` is dead-lettered."""
    bus.publish([vault_event(path) for path in paths])

    def dead() -> bool:
        bus.transport.collect_dead_letters()
        return len(DeadLetters(bus.engine).list()) >= len(paths)

    with bus.running(RecordingConsumer()):
        wait_until(dead, what="dead letters")


def test_a_poison_message_is_listed_with_its_reason_shown_and_replayed_after_the_fix(
    bus: Bus, run_weavenn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = tmp_path / "block"
    block.touch()
    monkeypatch.setenv("TEST_BLOCK_FILE", str(block))
    _kill_messages(bus, "blocked.md")

    listed = run_weavenn("dlq", "list", "--json", env=bus.env)
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert entry["queue"] == "mcp_sync"
    assert entry["routing_key"] == "vault.file.created"
    assert entry["attempts"] == 1
    assert "blocked.md is blocked" in entry["error"]

    shown = run_weavenn("dlq", "show", str(entry["id"]), "--json", env=bus.env)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["body"]["file_path"] == "blocked.md"
    assert detail["headers"]["x-consumer"] == "recorder"

    table = run_weavenn("dlq", "list", env=bus.env)
    assert "blocked.md is blocked" in table.stdout

    block.unlink()  # the cause is fixed
    replayed = run_weavenn("dlq", "replay", str(entry["id"]), env=bus.env)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 dead letter(s)" in replayed.stdout
    assert bus.queue("mcp_sync").ready == 1  # back in its own queue only
    assert bus.queue("n8n_workflows").ready == 1  # (what the first publish left there)
    with bus.running(RecordingConsumer()):
        wait_until(lambda: bus.effect_count() == 1, what="the replayed message")
    assert bus.effects()[0][1] == "blocked.md"
    assert json.loads(run_weavenn("dlq", "list", "--json", env=bus.env).stdout) == []


def test_replay_all_and_purge_need_an_explicit_choice(embedded_bus: Bus, run_weavenn) -> None:
    bus = embedded_bus
    _kill_messages(bus, "permanent-1.md", "permanent-2.md", "permanent-3.md")
    assert run_weavenn("dlq", "replay", env=bus.env).returncode == 2

    refused = run_weavenn("dlq", "purge", env=bus.env)
    assert refused.returncode == 2
    assert "without --yes" in refused.stderr

    ids = [e["id"] for e in json.loads(run_weavenn("dlq", "list", "--json", env=bus.env).stdout)]
    purged = run_weavenn("dlq", "purge", str(ids[0]), "--yes", env=bus.env)
    assert "purged 1 dead letter(s)" in purged.stdout

    replayed = run_weavenn("dlq", "replay", "--all", env=bus.env)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 2 dead letter(s)" in replayed.stdout
    assert bus.queue("mcp_sync").ready == 2

    missing = run_weavenn("dlq", "show", "999999", env=bus.env)
    assert missing.returncode == 2
    assert "no dead letter with id 999999" in missing.stderr


def test_dead_letters_rejected_by_another_rabbitmq_client_are_collected_too(
    rabbitmq_bus: Bus, run_weavenn
) -> None:
    import pika

    assert rabbitmq_bus.rabbitmq_url
    rabbitmq_bus.publish([vault_event("rejected.md")])
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_bus.rabbitmq_url))
    channel = connection.channel()
    method, _, _ = channel.basic_get("agent_tasks")
    channel.basic_reject(method.delivery_tag, requeue=False)  # the queue dead-letters it
    connection.close()
    first = json.loads(run_weavenn("dlq", "list", "--json", env=rabbitmq_bus.env).stdout)
    again = json.loads(run_weavenn("dlq", "list", "--json", env=rabbitmq_bus.env).stdout)
    assert first == again  # listing moves them once, and is not destructive
    [entry] = first
    assert entry["queue"] == "agent_tasks"
    assert entry["error"] == "dead-lettered by RabbitMQ: rejected"


def test_dlq_list_on_a_broker_without_the_topology_is_empty_not_an_error(
    rabbitmq_url: str, migrated_sqlite_url: str, run_weavenn
) -> None:
    env = {"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": migrated_sqlite_url}
    result = run_weavenn("dlq", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
