"""`weavenn up --demo` as a real process tree in a temp folder, on both transports.

One `up` per transport carries the whole scenario (the stack takes seconds to start): the
API answers, the demo is indexed, a note edited on disk is found by search and (once the
git-auto-commit consumer is registered) committed, a consumer killed with SIGKILL comes back
with a new pid, a second `up` in the same folder is refused, and SIGINT stops everything with
exit 0 and no process left. The embedded transport and RabbitMQ must observe the same.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bus.harness import wait_until
from weavenn_cli.runtime.consumers.registry import REGISTERED
from weavenn_cli.runtime.stack.state import pid_alive

START_TIMEOUT = 120.0  # a loaded 2-core machine starts five Python processes slowly
EVENT_TIMEOUT = 30.0
DEMO_NOTES = 37


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def state_file(folder: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((folder / "data" / "up.json").read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def processes(folder: Path) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in state_file(folder).get("processes", [])}


def search_paths(port: int, query: str) -> list[str]:
    answer = get_json(f"http://127.0.0.1:{port}/search?q={urllib.parse.quote(query)}")
    return sorted(item["path"] for item in (answer or {}).get("items", []))


@pytest.fixture(params=["embedded", "rabbitmq"])
def transport_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "embedded":
        return {}
    return {"RABBITMQ_URL": str(request.getfixturevalue("rabbitmq_url"))}


@pytest.fixture
def up_stack(
    tmp_path: Path, weavenn_bin: Path, transport_env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {**os.environ, **transport_env}
    with (tmp_path / "up.out").open("wb") as out, (tmp_path / "up.err").open("wb") as err:
        process = subprocess.Popen(
            [str(weavenn_bin), "up", "--demo", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=err,
        )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        for child in processes(tmp_path).values():  # never leave a child behind
            if child.get("pid") and pid_alive(child["pid"]):
                os.killpg(child["pid"], signal.SIGKILL)


def run(
    weavenn_bin: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(weavenn_bin), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def stderr_of(folder: Path) -> Callable[[], str]:
    return lambda: (folder / "up.err").read_text(errors="replace")


def test_up_demo_runs_the_stack_recovers_a_killed_consumer_and_stops_cleanly(
    up_stack: tuple[subprocess.Popen[bytes], int],
    tmp_path: Path,
    weavenn_bin: Path,
    transport_env: dict[str, str],
) -> None:
    up, port = up_stack
    api = f"http://127.0.0.1:{port}"
    vault = tmp_path / "vault"
    observed: dict[str, Any] = {}

    def alive_or_fail() -> None:
        assert up.poll() is None, f"up exited with {up.returncode}: {stderr_of(tmp_path)()}"

    def stack_ready() -> bool:
        alive_or_fail()
        return (get_json(f"{api}/health") or {}).get("status") == "ok" and all(
            p["state"] == "running" for p in processes(tmp_path).values() if p["command"]
        )

    wait_until(stack_ready, timeout=START_TIMEOUT, what="the API and every process running")
    observed["processes"] = sorted(
        name for name, p in processes(tmp_path).items() if p["state"] == "running"
    )

    # The demo vault is indexed: searchable through the API and the command.
    wait_until(lambda: search_paths(port, "strangler fig"), timeout=EVENT_TIMEOUT, what="index")
    observed["demo search"] = search_paths(port, '"strangler fig" rollout')

    # A note edited on disk: found by search, in the cache, and committed.
    word = f"zebrafish{uuid.uuid4().hex[:8]}"
    with (vault / "concepts" / "Vault.md").open("a") as note:
        note.write(f"\nEdited while the stack runs: {word}.\n")
    observed["edit search"] = wait_until(
        lambda: search_paths(port, word), timeout=EVENT_TIMEOUT, what="the edit in search"
    )
    found = run(weavenn_bin, "vault", "search", word, "--json", env=transport_env)
    assert found.returncode == 0, found.stderr
    assert [hit["path"] for hit in json.loads(found.stdout)] == ["concepts/Vault.md"]
    if "git-auto-commit" in REGISTERED:

        def committed() -> str:
            git = ["git", "-C", str(vault), "log", "--format=%H", "-S", word, "--", "concepts"]
            return subprocess.run(git, capture_output=True, text=True).stdout.strip()

        observed["edit committed"] = bool(
            wait_until(committed, timeout=EVENT_TIMEOUT, what="the edit committed")
        )

    # `weavenn status` from another terminal sees the same stack.
    status = run(weavenn_bin, "status", "--json", env=transport_env)
    assert status.returncode == 0, status.stderr
    snapshot = json.loads(status.stdout)
    assert snapshot["running"] is True and snapshot["api_url"] == api
    observed["notes indexed"] = snapshot["notes_indexed"]
    observed["dead letters"] = snapshot["dead_letters"]
    assert snapshot["last_commit"] is not None

    # A second `up` in the same folder is refused while this one runs.
    second = run(weavenn_bin, "up", "--port", str(free_port()), env=transport_env)
    assert second.returncode == 1 and "already running" in second.stderr

    # A consumer killed with SIGKILL comes back under a new pid, and works.
    victim = processes(tmp_path)["mcp-sync"]["pid"]
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        alive_or_fail()
        row = processes(tmp_path)["mcp-sync"]
        return row["state"] == "running" and row["pid"] != victim and row["restarts"] >= 1

    wait_until(replaced, timeout=EVENT_TIMEOUT, what="mcp-sync restarted")
    assert processes(tmp_path)["mcp-sync"]["last_exit"] == -signal.SIGKILL
    fresh = f"aardvark{uuid.uuid4().hex[:8]}"
    (vault / "Fresh note.md").write_text(f"---\ntags: [fresh]\n---\n# Fresh\n{fresh}\n")
    observed["after restart"] = wait_until(
        lambda: search_paths(port, fresh), timeout=EVENT_TIMEOUT, what="a note after the restart"
    )
    assert "mcp-sync exited with code -9; restarting" in (tmp_path / "data/logs/up.log").read_text()

    # Ctrl-C: everything stops, exit 0, no process left.
    pids = [p["pid"] for p in processes(tmp_path).values() if p["pid"]]
    assert len(pids) == len(observed["processes"])
    up.send_signal(signal.SIGINT)
    assert up.wait(90) == 0, stderr_of(tmp_path)()
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert {p["state"] for p in processes(tmp_path).values() if p["command"]} == {"stopped"}
    after = run(weavenn_bin, "status", env=transport_env)
    assert after.returncode == 1
    assert "not running" in after.stderr

    expected = {
        "processes": sorted({"serve", "watch", *(n for n in REGISTERED if n != "n8n-workflows")}),
        "demo search": [
            "components/Gateway.md",
            "concepts/Rollout.md",
            "concepts/Strangler fig.md",
            "guides/Moving to PostgreSQL.md",
        ],
        "edit search": ["concepts/Vault.md"],
        "notes indexed": DEMO_NOTES,
        "dead letters": 0,
        "after restart": ["Fresh note.md"],
    }
    if "git-auto-commit" in REGISTERED:
        expected["edit committed"] = True
    assert observed == expected  # the same on the embedded transport and on RabbitMQ
