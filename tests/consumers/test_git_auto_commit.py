"""`git-auto-commit` on the runner, on RabbitMQ and on the embedded transport.

Real repositories in the test's folder; events as the watcher publishes them. Waits are short
(GIT_COMMIT_DEBOUNCE_SECONDS=0.3) and every wait is a bounded poll.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import insert

from tests.bus.harness import Bus, wait_until
from tests.consumers.gitvault import commit_count, event, files_in, init_vault, message, write
from weavenn_cli.runtime.bus.deadletters import DeadLetters
from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.consumers.git_auto_commit import GitAutoCommitConsumer
from weavenn_cli.runtime.db.engine import session_factory, session_scope
from weavenn_cli.runtime.db.models.agent import AgentWriteback

QUEUE = "git_auto_commit"


def consumer(vault: Path, **settings: object) -> GitAutoCommitConsumer:
    values: dict[str, object] = {"vault_path": vault, "git_commit_debounce_seconds": 0.3}
    return GitAutoCommitConsumer.from_settings(load_settings(None, **{**values, **settings}))


def drained(bus: Bus) -> bool:
    queue = bus.queue(QUEUE)
    return queue.ready == 0 and not queue.unacknowledged


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    return init_vault(tmp_path / "vault", {"ideas/graph.md": "# Graph\n", "old.md": "old\n"})


def test_three_quick_edits_make_one_commit_each_arrival_restarting_the_wait(
    bus: Bus, vault: Path
) -> None:
    """Four edits 0.4 s apart span longer than the 1.5 s debounce, yet make one commit."""
    with bus.running(consumer(vault, git_commit_debounce_seconds=1.5)):
        for seq in range(1, 5):
            write(vault, "ideas/graph.md", f"# Graph\n\nedit {seq}\n")
            bus.publish([event(vault, "ideas/graph.md", seq=seq)])
            time.sleep(0.4)  # quicker than the debounce: the commit must wait for the last one
        wait_until(lambda: commit_count(vault) == 2, what="the commit")
        wait_until(lambda: drained(bus), what="every event acked")
    assert commit_count(vault) == 2
    assert message(vault) == "Updated ideas/graph.md\n"
    assert (vault / "ideas/graph.md").read_text() == "# Graph\n\nedit 4\n"


def test_a_full_batch_commits_without_waiting_for_quiet(bus: Bus, vault: Path) -> None:
    names = [f"inbox/{i}.md" for i in range(3)]
    for name in names:
        write(vault, name, f"{name}\n")
    # Quiet would take a minute: only the batch size can trigger this commit.
    with bus.running(consumer(vault, git_commit_debounce_seconds=60, autocommit_batch_size=3)):
        bus.publish([event(vault, name, "created") for name in names])
        wait_until(lambda: commit_count(vault) == 2, timeout=30, what="the full batch's commit")
        wait_until(lambda: drained(bus), what="every event acked")
    assert message(vault).splitlines()[0] == "vault: 3 created"


def test_deletions_and_renames_are_recorded_as_such(embedded_bus: Bus, vault: Path) -> None:
    (vault / "ideas/graph.md").unlink()
    (vault / "old.md").rename(vault / "archive.md")
    events = [
        event(vault, "ideas/graph.md", "deleted"),
        event(vault, "archive.md", "moved", old_path="old.md"),
    ]
    with embedded_bus.running(consumer(vault)):
        embedded_bus.publish(events)
        wait_until(lambda: commit_count(vault) == 2, what="the commit")
    assert sorted(files_in(vault)) == ["D\tideas/graph.md", "R100\told.md\tarchive.md"]
    assert message(vault).splitlines()[0] == "vault: 1 renamed, 1 deleted"


def test_secrets_workspace_state_and_large_files_are_skipped_and_logged(
    embedded_bus: Bus, vault: Path, caplog: pytest.LogCaptureFixture
) -> None:
    skipped = [".obsidian/workspace.json", ".env", "keys/aws-secret.md", "api-TOKEN.md"]
    for name in [*skipped, "ideas/new.md"]:
        write(vault, name, f"{name}\n")
    (vault / "video.md").write_bytes(b"x" * (10 * 1024 * 1024 + 1))
    caplog.set_level(logging.INFO, logger="weavenn_cli.runtime.consumers.git_auto_commit")
    names = [*skipped, "video.md", "ideas/new.md"]
    with embedded_bus.running(consumer(vault)):
        embedded_bus.publish([event(vault, name, "created") for name in names])
        wait_until(lambda: commit_count(vault) == 2, what="the commit")
        wait_until(lambda: drained(embedded_bus), what="every event acked, skipped ones too")
    assert files_in(vault) == ["A\tideas/new.md"]
    for name in [*skipped, "video.md"]:
        assert f"not committing {name}" in caplog.text
    assert "not committing .obsidian/workspace.json: Obsidian workspace state" in caplog.text
    assert "not committing .env: looks like a secret" in caplog.text
    assert "over the 10 MB limit" in caplog.text


def test_duplicate_and_replayed_events_never_make_an_empty_commit(bus: Bus, vault: Path) -> None:
    write(vault, "ideas/graph.md", "# Graph v2\n")
    first = event(vault, "ideas/graph.md", seq=1)
    with bus.running(consumer(vault)) as runner:
        bus.publish([first])
        wait_until(lambda: commit_count(vault) == 2, what="the first commit")
        # The same message again (the relay after a lost confirm), and the same change under
        # new ids (a watcher rescan after a restart), and a note that was never touched.
        bus.publish([first])
        bus.publish([event(vault, "ideas/graph.md", seq=1, tag="rescan")])
        bus.publish([event(vault, "old.md", seq=1, tag="rescan")])
        wait_until(lambda: runner.metrics.totals()["processed"] == 3, what="three applied")
        wait_until(lambda: runner.metrics.totals()["duplicates"] == 1, what="the duplicate")
        wait_until(lambda: drained(bus), what="every event acked")
    assert commit_count(vault) == 2


def test_a_change_written_by_agent_rules_is_named_in_a_trailer(
    embedded_bus: Bus, vault: Path
) -> None:
    write(vault, "ideas/graph.md", "---\ntags: [type/idea]\n---\n# Graph\n")
    written = event(vault, "ideas/graph.md", seq=2)
    with session_scope(session_factory(embedded_bus.engine)) as session:
        session.execute(
            insert(AgentWriteback).values(
                path="ideas/graph.md", content_hash=written.content_hash, rules="auto-tag"
            )
        )
    with embedded_bus.running(consumer(vault)):
        embedded_bus.publish([written])
        wait_until(lambda: commit_count(vault) == 2, what="the commit")
    assert message(vault) == ("Updated ideas/graph.md\n\nWeave-NN-Agent: auto-tag ideas/graph.md\n")


def test_a_held_index_lock_is_waited_out_then_the_commit_happens(
    embedded_bus: Bus, vault: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lock = vault / ".git" / "index.lock"
    lock.touch()
    write(vault, "ideas/graph.md", "# Graph, while another git runs\n")
    caplog.set_level(logging.INFO)
    with embedded_bus.running(consumer(vault)):
        embedded_bus.publish([event(vault, "ideas/graph.md", seq=1)])
        wait_until(lambda: "waiting for" in caplog.text, what="the consumer waiting on the lock")
        assert commit_count(vault) == 1
        lock.unlink()
        wait_until(lambda: commit_count(vault) == 2, what="the commit after the lock went")
        wait_until(lambda: drained(embedded_bus), what="the event acked")


def test_an_index_lock_held_beyond_the_wait_is_retried_not_a_crash(
    embedded_bus: Bus, vault: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lock = vault / ".git" / "index.lock"
    lock.touch()
    write(vault, "ideas/graph.md", "# Graph, after a long lock\n")
    git_consumer = consumer(vault)
    git_consumer.repository.lock_wait_seconds = 0.2
    caplog.set_level(logging.INFO)
    with embedded_bus.running(git_consumer) as runner:
        embedded_bus.publish([event(vault, "ideas/graph.md", seq=1)])
        wait_until(lambda: runner.metrics.totals()["retried"] >= 1, what="a retry")
        assert "IndexLocked" in caplog.text
        lock.unlink()
        wait_until(lambda: commit_count(vault) == 2, what="the commit on a later attempt")
        wait_until(lambda: drained(embedded_bus), what="the event acked")
    assert runner.metrics.totals()["dead_lettered"] == 0


def test_the_vault_is_initialised_when_it_is_not_a_repository(
    embedded_bus: Bus, tmp_path: Path
) -> None:
    vault = tmp_path / "fresh"
    write(vault, "first.md", "first\n")
    with embedded_bus.running(consumer(vault)):
        embedded_bus.publish([event(vault, "first.md", "created")])
        wait_until(lambda: commit_count(vault) == 1, what="the first commit")
    assert message(vault) == "Created first.md\n"


def test_a_path_outside_the_vault_is_dead_lettered_and_the_rest_of_its_batch_committed(
    embedded_bus: Bus, vault: Path
) -> None:
    write(vault, "ideas/graph.md", "# Graph v2\n")
    outside = event(vault, "ideas/graph.md", seq=1).model_copy(
        update={"message_id": "escape", "file_path": "../outside.md"}
    )
    with embedded_bus.running(consumer(vault)):
        embedded_bus.publish([outside, event(vault, "ideas/graph.md", seq=1)])
        wait_until(lambda: commit_count(vault) == 2, what="the valid change's commit")

        def dead() -> list:
            embedded_bus.transport.collect_dead_letters()
            return DeadLetters(embedded_bus.engine).list()

        rows = wait_until(dead, what="the dead letter")
    assert [row.message_id for row in rows] == ["escape"]
    assert "cannot commit '../outside.md'" in rows[0].error
    assert files_in(vault) == ["M\tideas/graph.md"]
