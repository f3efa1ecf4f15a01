"""`weavenn consume git-auto-commit` as a real process: restart with pending changes, refusal.

Events are acked only once their change is in a commit, so a consumer killed (-9) while it
holds changes waiting for quiet loses nothing: the next one commits them.
"""

from __future__ import annotations

import signal
import subprocess
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path

import pytest

from tests.bus.harness import Bus, consume_process, wait_until
from tests.consumers.gitvault import commit_count, event, git, init_vault, message, write


def git_consumer(bus: Bus, vault: Path, **env: str) -> ContextManager[subprocess.Popen[str]]:
    return consume_process(bus, "git-auto-commit", VAULT_PATH=str(vault), **env)


@pytest.mark.xdist_group("consume-process")
def test_pending_changes_survive_a_kill_and_are_committed_after_restart(
    rabbitmq_bus: Bus, tmp_path: Path
) -> None:
    vault = init_vault(tmp_path / "vault", {"ideas/graph.md": "# Graph\n"})
    write(vault, "ideas/graph.md", "# Graph\n\nedited\n")
    write(vault, "ideas/new.md", "# New\n")
    events = [event(vault, "ideas/graph.md", seq=1), event(vault, "ideas/new.md", "created")]
    # A minute of quiet before a commit: the first consumer holds the events, unacked.
    with git_consumer(rabbitmq_bus, vault, GIT_COMMIT_DEBOUNCE_SECONDS="60") as first:
        wait_until(lambda: rabbitmq_bus.queue("git_auto_commit").consumers, what="a consumer")
        rabbitmq_bus.publish(events)
        wait_until(lambda: rabbitmq_bus.queue("git_auto_commit").ready == 0, what="events in hand")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert commit_count(vault) == 1
    with git_consumer(rabbitmq_bus, vault, GIT_COMMIT_DEBOUNCE_SECONDS="0.3") as second:
        # Redelivered after the kill, each event is applied alone (a message that killed its
        # consumer must not take others down with it): one commit per change.
        wait_until(lambda: commit_count(vault) == 3, timeout=60, what="the commits after restart")
        wait_until(lambda: rabbitmq_bus.queue("git_auto_commit").ready == 0, what="acked")
        second.send_signal(signal.SIGTERM)
        _, stderr = second.communicate(timeout=30)
    assert second.returncode == 0, stderr
    assert "git-auto-commit stopped" in stderr
    subjects = sorted(message(vault, ref).splitlines()[0] for ref in ("HEAD", "HEAD~1"))
    assert subjects == ["Created ideas/new.md", "Updated ideas/graph.md"]
    changed = git(vault, "diff", "--name-status", "HEAD~2", "HEAD").splitlines()
    assert sorted(changed) == ["A\tideas/new.md", "M\tideas/graph.md"]
    assert git(vault, "status", "--porcelain").strip() == ""
    author = subprocess.run(
        ["git", "-C", str(vault), "log", "-1", "--format=%an <%ae>"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert author == "Weave-NN Bot <bot@weave-nn.local>"


def test_a_vault_that_is_not_a_repository_is_refused_in_one_line(run_weavenn, tmp_path) -> None:
    vault = tmp_path / "plain"
    vault.mkdir()
    result = run_weavenn(
        "consume", "git-auto-commit", env={"VAULT_PATH": str(vault), "GIT_AUTO_INIT": "false"}
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "is not a git repository" in lines[0] and "GIT_AUTO_INIT" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (vault / ".git").exists()


def test_consume_list_shows_git_auto_commit_with_its_queue_in_batches(run_weavenn) -> None:
    result = run_weavenn("consume", "--list")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "git-auto-commit" in line)
    assert "git_auto_commit" in row and "vault.file.*" in row and "batches" in row
