"""`weavenn bus setup` and `weavenn bus status` on both transports."""

from __future__ import annotations

import json
import subprocess

import pika

from tests.bus.harness import Bus, vault_event


def test_setup_is_idempotent_and_sets_every_queue_argument_explicitly(
    rabbitmq_url: str, migrated_sqlite_url: str, run_weavenn
) -> None:
    env = {"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": migrated_sqlite_url}
    first = run_weavenn("bus", "setup", env=env)
    second = run_weavenn("bus", "setup", env=env)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "mcp_sync" in first.stdout and "vault.file.*" in first.stdout
    vhost = rabbitmq_url.rsplit("/", 1)[1]
    listed = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_queues",
            "-p",
            vhost,
            "name",
            "arguments",
            "--formatter",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    # rabbitmqctl lists arguments as [name, type, value] triples
    arguments = {
        q["name"]: {name: value for name, _, value in q["arguments"]}
        for q in json.loads(listed.stdout)
    }
    assert len(arguments) == 1 + 4 + 4 * 4  # dlq, work queues, four retry queues each
    assert {args["x-queue-type"] for args in arguments.values()} == {"classic"}
    assert arguments["mcp_sync"]["x-dead-letter-exchange"] == "weave-nn.dlx"
    assert arguments["mcp_sync.retry.5000ms"] == {
        "x-queue-type": "classic",
        "x-message-ttl": 5000,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "mcp_sync",
    }
    assert "mcp_sync.retry.600000ms" in arguments


def test_setup_says_what_to_do_when_a_queue_exists_with_other_arguments(
    rabbitmq_url: str, migrated_sqlite_url: str, run_weavenn
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    connection.channel().queue_declare("mcp_sync", durable=True, arguments={"x-max-length": 5})
    connection.close()
    result = run_weavenn(
        "bus", "setup", env={"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": migrated_sqlite_url}
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "RabbitMQ refused a declaration" in lines[0] and "mcp_sync" in lines[0]


def test_status_shows_depths_consumers_retries_and_dead_letters(bus: Bus, run_weavenn) -> None:
    bus.publish([vault_event("a.md"), vault_event("b.md", "vault.file.deleted")])
    bus.enqueue([vault_event("waiting.md")])
    result = run_weavenn("bus", "status", "--json", env=bus.env)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    queues = {q["queue"]: q for q in status["queues"]}
    assert status["transport"] == bus.kind
    assert status["outbox_pending"] == 1
    assert queues["mcp_sync"]["ready"] == 2
    assert queues["agent_tasks"]["ready"] == 1
    assert queues["mcp_sync"]["retrying"] == 0
    assert queues["mcp_sync"]["dead_letters"] == 0
    assert queues["mcp_sync"]["consumers"] == 0
    if bus.kind == "embedded":
        assert queues["mcp_sync"]["unacknowledged"] == 0
    else:  # the shared broker has no management plugin: said, not guessed
        assert queues["mcp_sync"]["unacknowledged"] is None
        assert any("management plugin" in note for note in status["notes"])
    table = run_weavenn("bus", "status", env=bus.env)
    assert "mcp_sync" in table.stdout and "outbox: 1 event(s)" in table.stdout


def test_status_of_an_unmigrated_database_says_to_migrate(sqlite_url: str, run_weavenn) -> None:
    result = run_weavenn("bus", "status", env={"DATABASE_URL": sqlite_url})
    assert result.returncode == 1
    assert "run `weavenn migrate db` first" in result.stderr


def test_status_with_rabbitmq_down_is_one_line(migrated_sqlite_url: str, run_weavenn) -> None:
    from tests.bus.private_rabbitmq import free_port

    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    result = run_weavenn(
        "bus", "status", env={"RABBITMQ_URL": url, "DATABASE_URL": migrated_sqlite_url}
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: RabbitMQ unreachable")


def test_the_data_migration_leaves_the_bus_tables_to_their_own_database() -> None:
    from weavenn_cli.runtime.migration.tables import application_tables

    moved = {table.name for table in application_tables()}
    assert not moved & {"bus_messages", "bus_consumers", "dead_letters", "outbox", "inbox"}
