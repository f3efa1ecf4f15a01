"""git-auto-commit pushing to a bare repository on disk after each commit.

A second clone of the same bare repository plays the other machine: it pushes first, so the
consumer's push is rejected and has to rebase, or meets a conflict on the same note.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.bus.harness import Bus, wait_until
from tests.consumers.gitvault import commit_count, event, git, message, subjects, write
from tests.consumers.test_git_auto_commit import consumer, drained
from weavenn_cli.runtime.bus.backoff import Backoff
from weavenn_cli.runtime.git.autocommit import Requested
from weavenn_cli.runtime.git.pusher import Pusher


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository whose main branch holds two notes."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    seed = clone(bare, tmp_path / "seed")
    write(seed, "ideas/graph.md", "# Graph\n\nnodes and edges\n")
    write(seed, "todo.md", "- nothing\n")
    git(seed, "add", "--all")
    git(seed, "commit", "--quiet", "-m", "first notes")
    git(seed, "push", "--quiet", "origin", "main")
    return bare


def clone(bare: Path, target: Path) -> Path:
    git(bare.parent, "clone", "--quiet", str(bare), str(target))
    return target


def pushing(vault: Path) -> object:
    return consumer(vault, git_remote_push=True)


def remote_file(bare: Path, path: str) -> str:
    return git(bare, "show", f"main:{path}")


def test_each_commit_is_pushed(embedded_bus: Bus, remote: Path, tmp_path: Path) -> None:
    vault = clone(remote, tmp_path / "vault")
    write(vault, "ideas/graph.md", "# Graph\n\nnodes, edges, weights\n")
    git_consumer = consumer(vault, git_remote_push=True)
    with embedded_bus.running(git_consumer):
        embedded_bus.publish([event(vault, "ideas/graph.md", seq=1)])
        wait_until(lambda: commit_count(remote) == 2, what="the commit on the remote")
        assert git_consumer.pusher is not None and git_consumer.pusher.running
    assert not git_consumer.pusher.running  # the runner closed the consumer when it stopped
    assert subjects(remote)[0] == "Updated ideas/graph.md"
    assert remote_file(remote, "ideas/graph.md") == "# Graph\n\nnodes, edges, weights\n"


def test_a_rejected_push_rebases_on_the_remote_then_pushes(
    embedded_bus: Bus, remote: Path, tmp_path: Path
) -> None:
    vault = clone(remote, tmp_path / "vault")
    other = clone(remote, tmp_path / "other")
    write(other, "todo.md", "- written on the other machine\n")
    git(other, "commit", "--quiet", "-am", "other machine")
    git(other, "push", "--quiet", "origin", "main")
    write(vault, "ideas/graph.md", "# Graph\n\nedited here\n")
    with embedded_bus.running(pushing(vault)):
        embedded_bus.publish([event(vault, "ideas/graph.md", seq=1)])
        wait_until(lambda: commit_count(remote) == 3, what="our commit on top of theirs")
        wait_until(lambda: drained(embedded_bus), what="the event acked")
    assert subjects(remote) == ["Updated ideas/graph.md", "other machine", "first notes"]
    assert git(remote, "rev-list", "--merges", "main") == ""  # rebased, not merged
    assert (vault / "todo.md").read_text() == "- written on the other machine\n"
    assert git(vault, "status", "--porcelain") == ""


def test_a_conflict_keeps_the_remote_version_and_saves_ours_beside_it(
    embedded_bus: Bus, remote: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vault = clone(remote, tmp_path / "vault")
    other = clone(remote, tmp_path / "other")
    write(other, "ideas/graph.md", "# Graph\n\ntheir line\n")
    git(other, "commit", "--quiet", "-am", "their edit")
    git(other, "push", "--quiet", "origin", "main")
    write(vault, "ideas/graph.md", "# Graph\n\nour line\n")
    caplog.set_level(logging.WARNING)
    with embedded_bus.running(pushing(vault)):
        embedded_bus.publish([event(vault, "ideas/graph.md", seq=1)])
        wait_until(lambda: commit_count(remote) == 3, what="the resolved commit on the remote")
    tree = git(remote, "ls-tree", "-r", "--name-only", "main").splitlines()
    saved = [path for path in tree if path.startswith("ideas/graph.conflict-")]
    assert len(saved) == 1 and saved[0].endswith(".md"), tree
    assert remote_file(remote, "ideas/graph.md") == "# Graph\n\ntheir line\n"
    assert remote_file(remote, saved[0]) == "# Graph\n\nour line\n"
    assert (vault / saved[0]).read_text() == "# Graph\n\nour line\n"
    assert (vault / "ideas/graph.md").read_text() == "# Graph\n\ntheir line\n"
    assert f"ours is saved as {saved[0]}" in caplog.text
    assert message(remote, "main").startswith("Updated ideas/graph.md")


def test_an_unreachable_remote_does_not_hold_the_events_and_the_push_is_retried(
    embedded_bus: Bus, remote: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vault = clone(remote, tmp_path / "vault")
    away = remote.rename(tmp_path / "away.git")
    git_consumer = consumer(vault, git_remote_push=True)
    git_consumer.pusher = Pusher(
        git_consumer.repository, "origin", None, backoff=Backoff(base=0.2, cap=0.4)
    )
    caplog.set_level(logging.WARNING)
    with embedded_bus.running(git_consumer):
        write(vault, "ideas/graph.md", "# Graph\n\nwhile offline\n")
        embedded_bus.publish([event(vault, "ideas/graph.md", seq=1)])
        wait_until(lambda: "not pushed yet" in caplog.text, what="the failed push")
        wait_until(lambda: drained(embedded_bus), what="the committed event acked anyway")
        assert commit_count(vault) == 2
        away.rename(remote)
        # No new commit: the pusher tries again on its own.
        wait_until(lambda: commit_count(remote) == 2, what="the commit on the remote")
    assert subjects(remote)[0] == "Updated ideas/graph.md"


def test_a_note_deleted_here_but_edited_there_comes_back_as_the_remote_wrote_it(
    remote: Path, tmp_path: Path
) -> None:
    vault = clone(remote, tmp_path / "vault")
    other = clone(remote, tmp_path / "other")
    write(other, "todo.md", "- still needed\n")
    git(other, "commit", "--quiet", "-am", "their edit")
    git(other, "push", "--quiet", "origin", "main")
    (vault / "todo.md").unlink()
    repository = consumer(vault).repository
    assert repository.commit_requested([Requested("todo.md")], {}) is not None
    result = repository.push_branch("origin", None)
    assert result.pushed
    assert [(kept.path, kept.saved_as) for kept in result.conflicts] == [("todo.md", None)]
    assert remote_file(remote, "todo.md") == "- still needed\n"
    assert (vault / "todo.md").read_text() == "- still needed\n"
    assert subjects(remote)[0] == "their edit"  # our deletion became empty: dropped
    assert git(vault, "status", "--porcelain") == ""
