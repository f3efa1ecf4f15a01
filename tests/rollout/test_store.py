"""The rollout store on SQLite and PostgreSQL: values, audit trail, undo, samples, counts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.db.engine import make_engine
from weavenn_cli.runtime.db.models import VerifyRun
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.errors import DatabaseError, WeavennError
from weavenn_cli.runtime.rollout import ramp
from weavenn_cli.runtime.rollout.cohorts import bucket, user_key
from weavenn_cli.runtime.rollout.operations import move_of
from weavenn_cli.runtime.rollout.stats import StatsRecorder
from weavenn_cli.runtime.rollout.store import MISMATCH_SAMPLES_KEPT, RolloutStore


@pytest.fixture
def store(any_migrated_url: str) -> Iterator[RolloutStore]:
    opened = RolloutStore.open(any_migrated_url, load_settings())
    yield opened
    opened.close()


def test_a_service_without_a_row_runs_at_zero(store: RolloutStore) -> None:
    state = store.state("task-service")
    assert (state.percent, state.shadow, state.source) == (0, False, "default")
    assert store.history("task-service") == []


def test_changes_are_recorded_with_actor_reason_and_before_after(store: RolloutStore) -> None:
    first = store.set_percent("task-service", 10, actor="alice", reason="first slice")
    second = store.set_percent("task-service", 25, actor="bob")
    assert (first.before.percent, first.after.percent) == (0, 10)
    assert store.state("task-service").percent == 25
    assert store.state("task-service").updated_by == "bob"
    history = store.history("task-service")
    assert [(e.old_percent, e.new_percent, e.actor, e.reason) for e in history] == [
        (10, 25, "bob", None),
        (0, 10, "alice", "first slice"),
    ]
    assert second.entry == history[0]
    assert store.state("file-service").percent == 0  # services are independent


def test_setting_the_same_value_records_nothing(store: RolloutStore) -> None:
    store.set_percent("git-service", 50, actor="alice")
    again = store.set_percent("git-service", 50, actor="alice")
    assert again.entry is None
    assert len(store.history("git-service")) == 1


def test_undo_restores_the_previous_value_as_a_new_entry(store: RolloutStore) -> None:
    store.set_percent("task-service", 10, actor="alice")
    store.set_percent("task-service", 50, actor="alice")
    store.set_shadow("task-service", True, actor="carol")  # not a percentage change
    undone = store.undo("task-service", actor="bob", reason="errors up")
    assert (undone.before.percent, undone.after.percent) == (50, 10)
    assert undone.after.shadow is True
    latest = store.history("task-service")[0]
    assert (latest.old_percent, latest.new_percent, latest.actor) == (50, 10, "bob")
    assert latest.reason is not None and latest.reason.endswith("(10 → 50): errors up")
    assert len(store.history("task-service")) == 4


def test_undo_without_a_change_is_an_error(store: RolloutStore) -> None:
    with pytest.raises(WeavennError, match="nothing to undo"):
        store.undo("file-service", actor="alice")


def test_starting_value_comes_from_the_environment_until_stored(
    any_migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEW_TASK_SERVICE_ROLLOUT_PERCENTAGE", "10")
    monkeypatch.setenv("FILE_SERVICE_ROLLOUT_PERCENTAGE", "30")
    store = RolloutStore.open(any_migrated_url, load_settings())
    try:
        state = store.state("task-service")
        assert (state.percent, state.source) == (10, "NEW_TASK_SERVICE_ROLLOUT_PERCENTAGE")
        seeded = store.seed_from_settings("gateway@host")
        assert {c.after.service: c.after.percent for c in seeded} == {
            "task-service": 10,
            "file-service": 30,
        }
        assert store.state("task-service").source == "database"
        assert store.seed_from_settings("another replica") == []  # the first one wins
        entry = store.history("file-service")[0]
        assert (entry.old_percent, entry.new_percent) == (None, 30)
        assert entry.reason == "starting value from FILE_SERVICE_ROLLOUT_PERCENTAGE"
    finally:
        store.close()


def test_concurrent_first_changes_both_land_in_the_trail(store: RolloutStore) -> None:
    errors: list[BaseException] = []

    def change(percent: int) -> None:
        try:
            store.set_percent("git-service", percent, actor=f"op{percent}")
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=change, args=(p,)) for p in (20, 40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    history = store.history("git-service")
    assert len(history) == 2
    assert history[0].old_percent == history[1].new_percent  # a chain, nothing lost
    assert store.state("git-service").percent == history[0].new_percent


def test_mismatch_samples_keep_the_newest(store: RolloutStore) -> None:
    for n in range(MISMATCH_SAMPLES_KEPT + 5):
        store.record_mismatch(
            "task-service",
            "GET",
            f"/v2/tasks/{n}",
            (200, '{"title": "a"}'),
            (404, '{"error": {}}'),
            ["status: 200 ≠ 404"],
        )
    samples = store.mismatches("task-service", limit=MISMATCH_SAMPLES_KEPT + 10)
    assert len(samples) == MISMATCH_SAMPLES_KEPT
    assert samples[0].target == f"/v2/tasks/{MISMATCH_SAMPLES_KEPT + 4}"
    assert samples[0].legacy_body == '{"title": "a"}' and samples[0].new_status == 404


def test_windows_of_several_processes_add_up(store: RolloutStore) -> None:
    since = utcnow() - timedelta(seconds=1)
    for instance, (fast, slow) in (("gw-1", (40, 0)), ("gw-2", (55, 5))):
        recorder = StatsRecorder()
        for _ in range(fast):
            recorder.request("task-service", "new", 4.0, failed=False)
        for _ in range(slow):
            recorder.request("task-service", "new", 900.0, failed=True)
        recorder.request("task-service", "legacy", 2.0, failed=False)
        recorder.fallback("task-service")
        recorder.shadow("task-service", "mismatch")
        recorder.shadow("task-service", "dropped")
        store.record_window(instance, recorder.take())
    traffic = store.traffic("task-service", since)
    assert traffic.instances == 2
    assert (traffic.new.requests, traffic.new.errors, traffic.new.fallbacks) == (100, 5, 2)
    assert traffic.new.error_rate == 5.0
    assert traffic.new.p95_ms is not None and traffic.new.p95_ms <= 5
    assert traffic.legacy.requests == 2
    assert (traffic.shadow_compared, traffic.shadow_mismatched, traffic.shadow_dropped) == (2, 2, 2)
    assert store.traffic("file-service", since).instances == 0


def test_a_change_says_how_many_recent_users_it_moves(store: RolloutStore) -> None:
    recorder = StatsRecorder()
    users = [f"u{n}" for n in range(400)]
    for user in users:
        recorder.user("task-service", user_key("task-service", user), bucket("task-service", user))
    store.record_window("gw-1", recorder.take())
    store.record_window("gw-2", recorder.take())  # nothing new: no rows
    change = store.set_percent("task-service", 30, actor="alice")
    move = move_of(store, change)
    expected = sum(bucket("task-service", user) < 3000 for user in users)
    assert move is not None
    assert (move.moving, move.seen, move.to) == (expected, 400, "new")
    back = move_of(store, store.set_percent("task-service", 10, actor="alice"))
    assert back is not None and back.to == "legacy"
    assert back.moving == sum(1000 <= bucket("task-service", user) < 3000 for user in users)


def test_guarded_ramp_aborts_on_p95_and_records_why(store: RolloutStore) -> None:
    slow = StatsRecorder()
    for _ in range(20):
        slow.request("task-service", "new", 450.0, failed=False)

    def healthy() -> str | None:
        # The slow window arrives while the first step is being watched.
        store.record_window("gw-1", slow.take())
        return None

    limits = ramp.Limits(max_error_rate=1, max_p95_ms=200)
    with pytest.raises(ramp.RampAborted, match=r"p95 4\d\d ms > 200 ms"):
        ramp.run_ramp(store, "task-service", [10, 50], 3.0, limits, healthy, actor="ramp")
    assert store.state("task-service").percent == 0
    latest = store.history("task-service")[0]
    assert (latest.old_percent, latest.new_percent) == (10, 0)
    assert latest.reason is not None and latest.reason.startswith("guarded ramp aborted at 10 %")


def test_guarded_ramp_aborts_after_three_failed_health_checks(store: RolloutStore) -> None:
    probes: list[str] = []

    def failing() -> str | None:
        probes.append("probe")
        return "http://127.0.0.1:9/ready: ConnectError"

    limits = ramp.Limits(max_error_rate=1, max_p95_ms=200)
    with pytest.raises(ramp.RampAborted, match="health check failed 3 times"):
        ramp.run_ramp(store, "file-service", [5, 100], 6.0, limits, failing, actor="ramp")
    assert len(probes) == 3
    assert store.state("file-service").percent == 0


def test_a_database_without_the_tables_says_what_to_do(sqlite_url: str) -> None:
    store = RolloutStore.open(sqlite_url, load_settings())
    try:
        with pytest.raises(DatabaseError, match="no rollout tables: run `weavenn migrate db`"):
            store.states()
    finally:
        store.close()


def record_verify(url: str, identical: bool, differences: int = 0) -> None:
    engine = make_engine(url)
    now = utcnow()
    try:
        with Session(engine) as session, session.begin():
            session.add(
                VerifyRun(
                    source="sqlite:///old.db",
                    target=url,
                    tables=["tasks"],
                    identical=identical,
                    differences=differences,
                    repaired=0,
                    report={},
                    started_at=now,
                    finished_at=now,
                )
            )
    finally:
        engine.dispose()


def test_a_ramp_requiring_verification_waits_at_its_first_step(
    store: RolloutStore, any_migrated_url: str
) -> None:
    limits = ramp.Limits(max_error_rate=1, max_p95_ms=200)
    gate = ramp.verified_gate(any_migrated_url)

    def run() -> None:
        ramp.run_ramp(
            store, "task-service", [10, 20], 1.0, limits, lambda: None,
            actor="ramp", past_first_step=gate,
        )  # fmt: skip

    with pytest.raises(WeavennError, match=r"stays at 10 %.*verify` has never run"):
        run()
    assert store.state("task-service").percent == 10
    record_verify(any_migrated_url, identical=False, differences=3)
    with pytest.raises(WeavennError, match="found 3 differences"):
        run()
    record_verify(any_migrated_url, identical=True)
    run()
    assert store.state("task-service").percent == 20
