"""The consumer runner on every transport: acks after commit, inbox dedupe, retries, dlq."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from tests.bus.consumers import (
    BatchingConsumer,
    CommitEachConsumer,
    RecordingConsumer,
    SinkingBatchConsumer,
)
from tests.bus.harness import Bus, vault_event, wait_until
from weavenn_cli.runtime.bus.deadletters import DeadLetters
from weavenn_cli.runtime.bus.transport import OutgoingMessage
from weavenn_cli.runtime.db.models import DeliveryAttempt, InboxEntry
from weavenn_cli.runtime.db.types import utcnow


def _dead_letters(bus: Bus, count: int) -> list:
    def collected() -> list:
        bus.transport.collect_dead_letters()
        rows = DeadLetters(bus.engine).list()
        return rows if len(rows) >= count else []

    return wait_until(collected, what=f"{count} dead letter(s)")


def test_a_burst_takes_effect_once_each_and_leaves_the_queue_empty(bus: Bus) -> None:
    events = [vault_event(f"notes/{i}.md") for i in range(40)]
    bus.publish(events)
    with bus.running(RecordingConsumer(), prefetch=10) as runner:
        wait_until(lambda: bus.effect_count() >= 40, what="40 effects")
        wait_until(lambda: bus.queue("mcp_sync").ready == 0, what="queue drained")
    assert sorted(m for m, _, _ in bus.effects()) == sorted(e.message_id for e in events)
    assert runner.metrics.totals()["processed"] == 40


def test_a_commit_each_consumer_finds_every_earlier_message_committed(bus: Bus) -> None:
    # Its effects leave the database (agent-tasks writes notes): the messages in hand do not
    # share a transaction, so each one starts with all the earlier ones visible to others.
    bus.publish([vault_event(f"notes/{i}.md") for i in range(12)])
    with bus.running(CommitEachConsumer(bus.effect_count), prefetch=10):
        wait_until(lambda: bus.effect_count() >= 12, what="12 effects")
    seen = [int(batch or -1) for _, _, batch in bus.effects()]
    assert seen == list(range(12))


def test_duplicate_delivery_changes_nothing(bus: Bus) -> None:
    event = vault_event("notes/once.md")
    bus.publish([event])
    bus.publish([event])  # the relay republishing after a lost confirm
    with bus.running(RecordingConsumer()) as runner:
        wait_until(lambda: runner.metrics.totals()["duplicates"] == 1, what="the duplicate")
    assert bus.effects() == [(event.message_id, "notes/once.md", None)]
    assert runner.metrics.totals()["processed"] == 1


def test_malformed_messages_go_straight_to_the_dead_letters_and_the_consumer_carries_on(
    bus: Bus,
) -> None:
    publisher = bus.transport.publisher()
    publisher.publish(
        [
            OutgoingMessage("not-json", "vault.file.created", b"{this is not json"),
            OutgoingMessage("no-path", "vault.file.updated", b'{"message_id": "no-path"}'),
        ]
    )
    publisher.close()
    good = vault_event("notes/fine.md")
    bus.publish([good])
    with bus.running(RecordingConsumer()):
        wait_until(lambda: bus.effect_count() == 1, what="the good message")
        dead = _dead_letters(bus, 2)
    by_id = {row.message_id: row for row in dead}
    assert "body is not JSON" in by_id["not-json"].error
    assert "not a valid VaultFileEvent" in by_id["no-path"].error
    assert "file_path" in by_id["no-path"].error
    assert {row.attempts for row in dead} == {1}
    assert {row.queue for row in dead} == {"mcp_sync"}
    assert by_id["not-json"].body == b"{this is not json"


def test_a_failing_message_is_retried_with_delay_then_dead_lettered_with_its_attempts(
    bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = tmp_path / "started.log"
    monkeypatch.setenv("TEST_STARTED_FILE", str(started))
    doomed = vault_event("fail-always.md")
    bus.publish([doomed])
    with bus.running(RecordingConsumer()) as runner:
        [row] = _dead_letters(bus, 1)
    attempts = [line.split()[1] for line in started.read_text().splitlines()]
    assert attempts == ["1", "2", "3"]  # two delays configured: three attempts in all
    assert row.attempts == 3
    assert row.message_id == doomed.message_id
    assert row.routing_key == "vault.file.created"
    assert "RuntimeError: cannot apply fail-always.md" in row.error
    assert row.consumer == "recorder"
    assert bus.effects() == []
    totals = runner.metrics.totals()
    assert (totals["retried"], totals["dead_lettered"], totals["failed"]) == (2, 1, 3)


def test_a_message_that_fails_once_succeeds_on_its_retry_and_takes_effect_once(
    bus: Bus,
) -> None:
    flaky = vault_event("fail-once.md")
    bus.publish([flaky])
    with bus.running(RecordingConsumer()) as runner:
        wait_until(lambda: bus.effect_count() == 1, what="the retried message")
    assert bus.effects() == [(flaky.message_id, "fail-once.md", None)]
    assert runner.metrics.totals()["retried"] == 1
    assert DeadLetters(bus.engine).list() == []


def test_a_permanent_error_is_dead_lettered_without_retries(bus: Bus) -> None:
    bus.publish([vault_event("permanent.md"), vault_event("notes/after.md")])
    with bus.running(RecordingConsumer()) as runner:
        [row] = _dead_letters(bus, 1)
        wait_until(lambda: bus.effect_count() == 1, what="the next message")
    assert row.attempts == 1
    assert "PermanentError: permanent.md can never be applied" in row.error
    assert runner.metrics.totals()["retried"] == 0


def test_one_failing_message_does_not_undo_the_others_of_its_transaction(bus: Bus) -> None:
    events = [vault_event(f"notes/{i}.md") for i in range(5)] + [vault_event("permanent.md")]
    bus.publish(events)
    with bus.running(RecordingConsumer()):
        _dead_letters(bus, 1)
        wait_until(lambda: bus.effect_count() == 5, what="five effects")
    assert {path for _, path, _ in bus.effects()} == {f"notes/{i}.md" for i in range(5)}


def test_a_batch_consumer_applies_full_batches_and_flushes_the_rest_when_idle(bus: Bus) -> None:
    events = [vault_event(f"notes/{i}.md") for i in range(12)]
    bus.publish(events)
    with bus.running(BatchingConsumer(), prefetch=1):
        wait_until(lambda: bus.effect_count() == 12, what="twelve effects")
        wait_until(lambda: bus.queue("git_auto_commit").ready == 0, what="acks")
    batches: dict[str | None, int] = {}
    for _, _, batch in bus.effects("batcher"):
        batches[batch] = batches.get(batch, 0) + 1
    assert sum(batches.values()) == 12
    assert max(batches.values()) == 5  # never more than batch_size at once
    assert len(batches) >= 3  # 12 messages cannot fit in fewer batches of 5


def test_a_failing_batch_falls_back_to_one_message_at_a_time(bus: Bus) -> None:
    """One poison message must not sink the batch it arrived in."""
    events = [vault_event(f"notes/{i}.md") for i in range(2)]
    events += [vault_event("poison.md"), *(vault_event(f"notes/{i}.md") for i in range(2, 4))]
    bus.publish(events)
    with bus.running(SinkingBatchConsumer()) as runner:
        wait_until(lambda: bus.effect_count() == 4, what="the four good messages")
        dead = _dead_letters(bus, 1)
        wait_until(lambda: bus.queue("git_auto_commit").ready == 0, what="acks")
    assert [row.message_id for row in dead] == [events[2].message_id]
    assert sorted(path for _, path, _ in bus.effects()) == [f"notes/{i}.md" for i in range(4)]
    assert runner.metrics.totals()["processed"] == 4


def test_a_batch_consumer_retries_only_the_messages_it_reports_failed(bus: Bus) -> None:
    bus.publish([vault_event("notes/a.md"), vault_event("fail-once.md"), vault_event("notes/b.md")])
    with bus.running(BatchingConsumer()) as runner:
        wait_until(lambda: bus.effect_count() == 3, what="three effects")
    assert sorted(path for _, path, _ in bus.effects()) == [
        "fail-once.md",
        "notes/a.md",
        "notes/b.md",
    ]
    assert runner.metrics.totals()["retried"] == 1


def test_the_runner_prunes_its_inbox_past_the_retention_and_keeps_the_rest(bus: Bus) -> None:
    now = utcnow()
    rows = [
        ("recorder", "old-1", now - timedelta(hours=200)),
        ("recorder", "old-2", now - timedelta(hours=169)),
        ("recorder", "recent", now - timedelta(hours=1)),
        ("someone-else", "old-3", now - timedelta(hours=200)),
    ]
    with bus.engine.begin() as connection:
        connection.execute(
            insert(InboxEntry),
            [{"consumer": c, "message_id": m, "processed_at": t} for c, m, t in rows],
        )
        connection.execute(
            insert(DeliveryAttempt),
            [
                {"consumer": "recorder", "message_id": "old-1", "deliveries": 2},
                {"consumer": "recorder", "message_id": "recent", "deliveries": 1},
            ],
        )
        connection.execute(
            update(DeliveryAttempt)
            .where(DeliveryAttempt.message_id == "old-1")
            .values(last_delivered_at=now - timedelta(hours=200))
        )

    def inbox() -> set[tuple[str, str]]:
        with bus.reader.connect() as connection:
            return set(connection.execute(select(InboxEntry.consumer, InboxEntry.message_id)))

    # Pruning runs when the runner starts, then every few minutes.
    with bus.running(RecordingConsumer(), inbox_retention=timedelta(hours=168)):
        wait_until(lambda: ("recorder", "old-1") not in inbox(), what="the prune")
    assert inbox() == {("recorder", "recent"), ("someone-else", "old-3")}
    with bus.reader.connect() as connection:
        assert set(connection.scalars(select(DeliveryAttempt.message_id))) == {"recent"}
