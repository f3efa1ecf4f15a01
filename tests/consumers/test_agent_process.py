"""`weavenn consume agent-tasks` as a real process on RabbitMQ and PostgreSQL, behind the real
`weavenn watch` and `weavenn consume mcp-sync`: one save gets exactly one write-back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from tests.bus.harness import wait_until
from tests.bus.pipeline import weavenn_process
from weavenn_cli.runtime.db.engine import parse_database_url
from weavenn_cli.runtime.db.models import AgentWriteback, InboxEntry, Note, OutboxMessage
from weavenn_cli.runtime.vault.parser import content_hash, parse_note

DEPLOY = "---\ntitle: Deploy\ntags: [mine]\n---\nThe kubernetes rollout follows graph theory.\n"


def rows(engine: Engine, statement: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(statement).all())


def vault_events(engine: Engine, path: str) -> list[dict[str, Any]]:
    payloads = rows(
        engine,
        select(OutboxMessage.payload)
        .where(OutboxMessage.routing_key.startswith("vault.file."))
        .order_by(OutboxMessage.id),
    )
    events = [json.loads(payload) for (payload,) in payloads]
    return [event for event in events if event["file_path"] == path]


@pytest.mark.xdist_group("agent-process")
def test_one_save_through_watch_bus_and_consumers_gives_exactly_one_write_back(
    tmp_path: Path, rabbitmq_url: str, migrated_pg_url: str, run_weavenn: Any
) -> None:
    vault = tmp_path / "vault"
    (vault / "ideas").mkdir(parents=True)
    (vault / "features").mkdir()
    env = {
        "DATABASE_URL": migrated_pg_url,
        "RABBITMQ_URL": rabbitmq_url,
        "VAULT_PATH": str(vault),
        "DEBOUNCE_SECONDS": "0.1",
    }
    engine = create_engine(parse_database_url(migrated_pg_url))
    try:
        with (
            weavenn_process("watch", env=env),
            weavenn_process("consume", "mcp-sync", env=env),
            weavenn_process("consume", "agent-tasks", env=env) as agent,
        ):
            (vault / "ideas/Graph Theory.md").write_text("# Graph Theory\n")
            wait_until(
                lambda: rows(engine, select(Note.path).where(Note.path.like("ideas/%"))),
                what="the cache to know Graph Theory",
                timeout=60,
            )
            (vault / "features/deploy.md").write_text(DEPLOY)
            [(written_hash,)] = wait_until(
                lambda: rows(
                    engine,
                    select(AgentWriteback.content_hash).where(
                        AgentWriteback.path == "features/deploy.md"
                    ),
                ),
                what="the write-back",
                timeout=60,
            )
            # The watcher publishes the write-back; agent-tasks takes it as its own.
            echo = wait_until(
                lambda: [
                    e
                    for e in vault_events(engine, "features/deploy.md")
                    if e["content_hash"] == written_hash
                ],
                what="the write-back's own event",
                timeout=60,
            )[0]
            wait_until(
                lambda: rows(
                    engine,
                    select(InboxEntry.message_id).where(
                        InboxEntry.consumer == "agent-tasks",
                        InboxEntry.message_id == echo["message_id"],
                    ),
                ),
                what="agent-tasks to handle the write-back's event",
                timeout=60,
            )
            assert agent.poll() is None
        written = (vault / "features/deploy.md").read_bytes()
        assert content_hash(written) == written_hash
        assert parse_note("x", written).tags == [
            "mine",
            "type/feature",
            "topic/kubernetes",
            "topic/rollout",
        ]
        assert written.endswith(b"---\nThe kubernetes rollout follows graph theory.\n")
        assert len(rows(engine, select(AgentWriteback.path))) == 1
        assert [e["event_type"] for e in vault_events(engine, "features/deploy.md")] == [
            "vault.file.created",
            "vault.file.updated",
        ]
        metadata = rows(
            engine,
            select(OutboxMessage.routing_key, OutboxMessage.published_at).where(
                OutboxMessage.routing_key.startswith("vault.metadata.")
            ),
        )
        assert {key for key, _ in metadata} == {
            "vault.metadata.tags_updated",
            "vault.metadata.links_updated",
        }
    finally:
        engine.dispose()

    listed = run_weavenn(
        "vault", "suggestions", "features/deploy", "--json", env={"DATABASE_URL": migrated_pg_url}
    )
    assert listed.returncode == 0, listed.stderr
    [suggestion] = json.loads(listed.stdout)
    assert suggestion["target_path"] == "ideas/Graph Theory.md"
    assert suggestion["mention"] == "graph theory"
    table = run_weavenn(
        "vault", "suggestions", "features/deploy.md", env={"DATABASE_URL": migrated_pg_url}
    )
    assert table.returncode == 0, table.stderr
    assert "ideas/Graph Theory.md" in table.stdout and "0.60" in table.stdout


def test_vault_suggestions_of_a_note_not_in_the_cache_is_one_error_line(
    run_weavenn: Any, migrated_sqlite_url: str
) -> None:
    result = run_weavenn(
        "vault", "suggestions", "nope.md", env={"DATABASE_URL": migrated_sqlite_url}
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nope.md is not in the cache" in lines[0]


def test_a_malformed_rules_file_stops_the_consumer_at_start_in_one_line(
    run_weavenn: Any, tmp_path: Path, migrated_sqlite_url: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("folders:\n  features/: [unclosed\n")
    (tmp_path / "vault").mkdir()
    result = run_weavenn(
        "consume",
        "agent-tasks",
        env={
            "DATABASE_URL": migrated_sqlite_url,
            "VAULT_PATH": str(tmp_path / "vault"),
            "AGENT_RULES_PATH": str(rules),
        },
        timeout=60,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"rules file {rules} is not valid YAML" in lines[0]


def test_consume_list_shows_agent_tasks_with_its_queue_and_bindings(run_weavenn: Any) -> None:
    result = run_weavenn("consume", "--list")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "agent-tasks" in line)
    assert "agent_tasks" in line and "vault.file.created" in line and "task.*" in line
