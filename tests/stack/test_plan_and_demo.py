"""What `up` plans to run, and the demo vault it can create (in process: no stack started)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.consumers import registry
from weavenn_cli.runtime.errors import UsageError
from weavenn_cli.runtime.stack import plan
from weavenn_cli.runtime.stack.demo import demo_notes, fill_demo_vault
from weavenn_cli.runtime.vault.parser import parse_note

N8N = "n8n-workflows"


def options(tmp_path: Path, *skip: str) -> plan.StackOptions:
    return plan.StackOptions(vault=tmp_path / "vault", port=8123, skip_consumers=frozenset(skip))


def by_name(stack: plan.StackPlan) -> dict[str, tuple[str, ...]]:
    return {child.name: child.command for child in stack.children}


def test_the_stack_is_the_api_the_watcher_and_every_registered_consumer(tmp_path: Path) -> None:
    stack = plan.plan_stack(Settings(), options(tmp_path))
    commands = by_name(stack)
    configured = {n for n in registry.REGISTERED if n != N8N}
    assert set(commands) == {"serve", "watch", *configured}
    assert commands["serve"][:3] == (sys.executable, "-m", "weavenn_cli")
    assert commands["serve"][3:] == (
        "serve",
        "all",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--no-access-log",
    )
    assert commands["watch"][3:] == ("watch",)  # the relay runs inside the watcher
    assert commands["mcp-sync"][3:5] == ("consume", "mcp-sync")
    assert stack.api_url == "http://127.0.0.1:8123"
    assert stack.transport == "embedded (in the database)"
    order = {child.name: child.stop_stage for child in stack.children}
    assert order["watch"] < order["mcp-sync"] < order["serve"]


def test_no_consumers_switches_consumers_off_and_refuses_unknown_names(tmp_path: Path) -> None:
    stack = plan.plan_stack(Settings(), options(tmp_path, "mcp-sync"))
    assert "mcp-sync" not in by_name(stack)
    assert [(i.name, i.state) for i in stack.idle if i.name == "mcp-sync"] == [
        ("mcp-sync", "disabled")
    ]
    with pytest.raises(UsageError, match="unknown consumer nope"):
        plan.plan_stack(Settings(), options(tmp_path, "nope"))
    assert plan.parse_consumer_names(["a,b", " c ", ""]) == {"a", "b", "c"}


def test_the_n8n_consumer_runs_only_once_a_webhook_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if N8N not in registry.REGISTERED:  # stands in until the n8n consumer is registered
        monkeypatch.setitem(
            registry.REGISTERED, N8N, "weavenn_cli.runtime.consumers.mcp_sync:McpSyncConsumer"
        )
    unconfigured = plan.plan_stack(Settings(), options(tmp_path))
    assert N8N not in by_name(unconfigured)
    (idle,) = [i for i in unconfigured.idle if i.name == N8N]
    assert idle.state == "not configured" and "N8N_WEBHOOK_URL" in idle.note
    configured = plan.plan_stack(
        Settings(n8n_webhook_url="http://127.0.0.1:5678/webhook/x"), options(tmp_path)
    )
    assert N8N in by_name(configured)


def test_rabbitmq_url_makes_the_stack_use_rabbitmq(tmp_path: Path) -> None:
    stack = plan.plan_stack(
        Settings(rabbitmq_url="amqp://guest:secret@127.0.0.1:5672/x"), options(tmp_path)
    )
    assert stack.transport.startswith("RabbitMQ at amqp://guest:")
    assert "secret" not in stack.transport


def test_the_demo_fills_a_missing_vault_with_linked_notes_under_git(tmp_path: Path) -> None:
    vault = tmp_path / "missing" / "vault"
    result = fill_demo_vault(vault)
    assert result.filled and result.commit
    notes = sorted(vault.rglob("*.md"))
    assert result.notes == len(notes) >= 30
    parsed = [parse_note(path.relative_to(vault).as_posix(), path.read_bytes()) for path in notes]
    assert all(note.frontmatter for note in parsed)
    assert all(note.tags for note in parsed)
    assert sum(len(note.links) for note in parsed) >= 100
    assert "- [ ] " in (vault / "Tasks.md").read_text()
    git = ["git", "-C", str(vault)]
    assert (
        subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout == ""
    )
    log = subprocess.run([*git, "log", "--format=%H %s"], capture_output=True, text=True).stdout
    assert log.split()[0] == result.commit and len(log.splitlines()) == 1


def test_every_link_of_the_demo_resolves_to_a_note_of_the_demo(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    fill_demo_vault(vault)
    paths = {p.relative_to(vault).with_suffix("").as_posix().lower() for p in vault.rglob("*.md")}
    names = {p.rsplit("/", 1)[-1] for p in paths}
    for path in vault.rglob("*.md"):
        for link in parse_note(path.name, path.read_bytes()).links:
            target = link.target.lower()
            assert target in paths or target in names, f"{path.name} links to {link.target}"


@pytest.mark.parametrize("content", ["note.md", ".git", ".obsidian"])
def test_the_demo_never_touches_a_vault_that_has_anything_in_it(
    tmp_path: Path, content: str
) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    if content.startswith("."):
        (vault / content).mkdir()
    else:
        (vault / content).write_text("mine\n")
    before = sorted(p.relative_to(vault) for p in vault.rglob("*"))
    result = fill_demo_vault(vault)
    assert not result.filled
    assert "not empty" in result.reason
    assert sorted(p.relative_to(vault) for p in vault.rglob("*")) == before


def test_the_demo_notes_are_package_data_next_to_the_code() -> None:
    shipped = demo_notes()
    assert shipped.joinpath("Welcome.md").is_file()
    assert shipped.joinpath("Tasks.md").is_file()


def test_up_without_a_vault_says_how_to_get_one(run_weavenn) -> None:
    result = run_weavenn("up", "--port", "1")
    assert result.returncode == 2
    assert "vault folder" in result.stderr and "weavenn up --demo" in result.stderr
    assert not Path("data/up.json").exists()


def test_up_refuses_a_port_in_use_before_starting_anything(run_weavenn, tmp_path: Path) -> None:
    import socket

    (tmp_path / "vault").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_weavenn("up", "--port", str(taken.getsockname()[1]))
    assert result.returncode == 1
    assert "cannot serve the API on 127.0.0.1:" in result.stderr and "--port" in result.stderr
    assert not Path("data/up.json").exists()


def test_status_where_up_never_ran_exits_1_and_says_so(run_weavenn) -> None:
    result = run_weavenn("status", "--json")
    assert result.returncode == 1
    snapshot = json.loads(result.stdout)
    assert snapshot["running"] is False and snapshot["processes"] == []
    assert "not running" in result.stderr
    assert not Path("data").exists()  # looking created nothing
