"""`weavenn migrate backfill` between real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from datetime import UTC, datetime

import pytest

from tests.migration.conftest import (
    BASE_TIME,
    insert_sqlite,
    pg_query,
    sqlite_path,
    sqlite_query,
    task_rows,
)
from weavenn_cli.runtime.migration import verify
from weavenn_cli.runtime.migration.tables import resolve_tables


def _backfill(run_weavenn, source: str, target: str, *args: str):
    return run_weavenn("migrate", "backfill", "--source", source, "--target", target, *args)


def _tasks_summary(stdout: str) -> dict:
    """The tasks line of `backfill --json` (every application table has one)."""
    return next(t for t in json.loads(stdout)["tables"] if t["table"] == "tasks")


def test_copies_tasks_into_postgres_with_real_types(
    run_weavenn, migrated_sqlite_url, migrated_pg_url
) -> None:
    insert_sqlite(migrated_sqlite_url, task_rows(50))
    result = _backfill(run_weavenn, migrated_sqlite_url, migrated_pg_url, "--json")
    assert result.returncode == 0, result.stderr
    summary = _tasks_summary(result.stdout)
    assert (summary["read"], summary["written"], summary["rejected"]) == (50, 50, 0)
    row = pg_query(
        migrated_pg_url,
        "SELECT created_at, completed, tags, due_date FROM tasks WHERE title LIKE 'Task 5 %'",
    )[0]
    assert row[0] == datetime(2024, 3, 1, 12, 5, 0, 5, tzinfo=UTC)
    assert row[1] is True
    assert row[2] == ["urgent", "home"]
    assert row[3] == datetime(2024, 3, 3, 12, 5, 0, 5, tzinfo=UTC)
    assert "tasks" in result.stderr and "rows/s" in result.stderr  # the progress bar


def test_numeric_and_iso_timestamps_and_text_booleans_are_converted(
    run_weavenn, migrated_sqlite_url, migrated_pg_url
) -> None:
    epoch = BASE_TIME.timestamp()
    rows = [
        ("a", "p", "epoch", "todo", epoch + 0.25, "true", epoch, '{"b": 1, "a": [1.5]}', epoch),
        ("b", "p", "iso", "todo", "2024-03-01T14:00:00+02:00", "0", "2024-03-01T12:00:00Z",
         None, "2024-03-01 12:00:00"),
    ]  # fmt: skip
    insert_sqlite(migrated_sqlite_url, rows)
    assert _backfill(run_weavenn, migrated_sqlite_url, migrated_pg_url).returncode == 0
    got = dict(
        (key, rest)
        for key, *rest in pg_query(
            migrated_pg_url, "SELECT id, due_date, completed, created_at, tags FROM tasks"
        )
    )
    assert got["a"] == [
        datetime(2024, 3, 1, 12, 0, 0, 250000, tzinfo=UTC),
        True,
        BASE_TIME,
        {"a": [1.5], "b": 1},
    ]
    assert got["b"] == [BASE_TIME, False, BASE_TIME, None]


def test_twice_and_over_newer_rows_leaves_one_copy_and_keeps_the_newer(
    run_weavenn, migrated_sqlite_url, migrated_pg_url
) -> None:
    rows = task_rows(30)
    insert_sqlite(migrated_sqlite_url, rows)
    assert _backfill(run_weavenn, migrated_sqlite_url, migrated_pg_url).returncode == 0
    newer_id, older_id = rows[3][0], rows[4][0]
    # The application wrote these in PostgreSQL meanwhile: one newer, one older than SQLite.
    pg_query(
        migrated_pg_url,
        "UPDATE tasks SET title = 'newer in target', updated_at = now() WHERE id = %s",
        (newer_id,),
    )
    pg_query(
        migrated_pg_url,
        "UPDATE tasks SET title = 'stale in target', updated_at = '2000-01-01Z' WHERE id = %s",
        (older_id,),
    )
    pg_query(
        migrated_pg_url,
        "INSERT INTO tasks VALUES "
        "('only-target', 'p', 't', 'todo', NULL, false, now(), NULL, now())",
    )
    second = _backfill(run_weavenn, migrated_sqlite_url, migrated_pg_url, "--json")
    assert second.returncode == 0, second.stderr
    summary = _tasks_summary(second.stdout)
    assert (summary["read"], summary["written"], summary["skipped"]) == (30, 1, 29)
    titles = dict(pg_query(migrated_pg_url, "SELECT id, title FROM tasks"))
    assert titles[newer_id] == "newer in target"
    assert titles[older_id] == rows[4][2]
    assert len(titles) == 31
    assert pg_query(migrated_pg_url, "SELECT count(*), count(DISTINCT id) FROM tasks") == [(31, 31)]


def test_killed_three_times_then_finished_is_complete_without_duplicates(
    weavenn_bin, migrated_sqlite_url, migrated_pg_url
) -> None:
    total = 30_000
    insert_sqlite(migrated_sqlite_url, task_rows(total))
    command = [
        str(weavenn_bin), "migrate", "backfill", "--source", migrated_sqlite_url,
        "--target", migrated_pg_url, "--batch-size", "300",
    ]  # fmt: skip
    rng = random.Random(7)
    progress = 0
    for _ in range(3):
        stop_at = progress + rng.randint(1_000, 6_000)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            progress = _wait_for_progress(migrated_pg_url, stop_at, process)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        assert progress < total, "the run finished before it could be killed"
    finished = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    last_run = _tasks_summary(finished.stdout)
    assert last_run["resumed_after"] >= progress  # continued, did not start over
    assert last_run["read"] == total - last_run["resumed_after"]
    assert pg_query(migrated_pg_url, "SELECT count(*), count(DISTINCT id) FROM tasks") == [
        (total, total)
    ]
    report = verify.verify(migrated_sqlite_url, migrated_pg_url, resolve_tables(["tasks"]))
    assert report.identical, report.as_dict()
    read, finished_at = pg_query(
        migrated_pg_url,
        "SELECT rows_read, finished_at FROM backfill_checkpoints WHERE table_name = 'tasks'",
    )[0]
    assert (read, finished_at is not None) == (total, True)


def _wait_for_progress(pg_url: str, at_least: int, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        rows = pg_query(
            pg_url,
            "SELECT rows_read FROM backfill_checkpoints "
            "WHERE table_name = 'tasks' AND finished_at IS NULL",
        )
        if rows and rows[0][0] >= at_least:
            return int(rows[0][0])
        time.sleep(0.02)
    raise AssertionError(f"backfill did not reach {at_least} rows (exit {process.poll()})")


BAD_ROWS = [
    ("bad-date", "p", "t", "todo", "next tuesday", 0, "2024-03-01 12:00:00.000000", None,
     "2024-03-01 12:00:00.000000"),
    ("bad-bool", "p", "t", "todo", None, 7, "2024-03-01 12:00:00.000000", None,
     "2024-03-01 12:00:00.000000"),
    ("bad-json", "p", "t", "todo", None, 0, "2024-03-01 12:00:00.000000", "{oops",
     "2024-03-01 12:00:00.000000"),
    ("bad-nul", "p", "nul \x00 byte", "todo", None, 0, "2024-03-01 12:00:00.000000", None,
     "2024-03-01 12:00:00.000000"),
]  # fmt: skip


def test_rows_that_cannot_be_written_are_set_aside_with_reasons_and_exit_1(
    run_weavenn, migrated_sqlite_url, migrated_pg_url
) -> None:
    insert_sqlite(migrated_sqlite_url, task_rows(20) + BAD_ROWS)
    result = _backfill(run_weavenn, migrated_sqlite_url, migrated_pg_url, "--batch-size", "8")
    assert result.returncode == 1
    assert "4 rows rejected: see table backfill_rejects" in result.stderr
    reasons = dict(pg_query(migrated_pg_url, "SELECT key->>0, reason FROM backfill_rejects"))
    assert set(reasons) == {"bad-date", "bad-bool", "bad-json", "bad-nul"}
    assert "due_date" in reasons["bad-date"] and "timestamp" in reasons["bad-date"]
    assert "boolean" in reasons["bad-bool"]
    assert "json" in reasons["bad-json"].lower()
    assert "0x00" in reasons["bad-nul"]
    assert pg_query(migrated_pg_url, "SELECT count(*) FROM tasks") == [(20,)]


def test_on_error_stop_stops_at_the_first_bad_row(
    run_weavenn, migrated_sqlite_url, migrated_pg_url
) -> None:
    insert_sqlite(migrated_sqlite_url, task_rows(20) + BAD_ROWS[:1])
    result = _backfill(
        run_weavenn, migrated_sqlite_url, migrated_pg_url, "--on-error", "stop",
        "--batch-size", "100",
    )  # fmt: skip
    assert result.returncode == 1
    assert "row bad-date of tasks rejected" in result.stderr
    assert "--on-error skip" in result.stderr
    assert pg_query(migrated_pg_url, "SELECT count(*) FROM tasks") == [(0,)]
    assert pg_query(migrated_pg_url, "SELECT count(*) FROM backfill_rejects") == [(0,)]


def test_dry_run_prints_the_plan_and_writes_nothing(
    run_weavenn, migrated_sqlite_url, migrated_pg_url
) -> None:
    insert_sqlite(migrated_sqlite_url, task_rows(12))
    result = _backfill(run_weavenn, migrated_sqlite_url, migrated_pg_url, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = {entry["table"]: entry for entry in json.loads(result.stdout)}
    assert plan["tasks"]["source_rows"] == 12 and plan["notes"]["source_rows"] == 0
    assert "completed: 0/1 → boolean" in plan["tasks"]["conversions"]
    assert "tags: JSON text → jsonb" in plan["tasks"]["conversions"]
    assert pg_query(migrated_pg_url, "SELECT count(*) FROM tasks") == [(0,)]
    assert pg_query(migrated_pg_url, "SELECT count(*) FROM backfill_checkpoints") == [(0,)]


def test_restart_starts_over_and_resume_refuses_another_source(
    run_weavenn, migrated_sqlite_url, migrated_pg_url, tmp_path
) -> None:
    insert_sqlite(migrated_sqlite_url, task_rows(10))
    pg_query(
        migrated_pg_url,
        "INSERT INTO backfill_checkpoints VALUES ('tasks', 'sqlite:////elsewhere.db', '[\"x\"]',"
        " 5, 5, 0, 0, 10, now(), now(), NULL)",
    )
    refused = _backfill(run_weavenn, migrated_sqlite_url, migrated_pg_url)
    assert refused.returncode == 2
    assert "was reading from sqlite:////elsewhere.db" in refused.stderr
    assert "--restart" in refused.stderr
    restarted = _backfill(run_weavenn, migrated_sqlite_url, migrated_pg_url, "--restart")
    assert restarted.returncode == 0, restarted.stderr
    assert pg_query(migrated_pg_url, "SELECT count(*) FROM tasks") == [(10,)]


def test_refuses_a_target_not_at_head(run_weavenn, migrated_sqlite_url, pg_url) -> None:
    result = _backfill(run_weavenn, migrated_sqlite_url, pg_url)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "target" in lines[0] and "not at head" in lines[0] and "weavenn migrate db" in lines[0]


def test_refuses_a_source_without_the_table(run_weavenn, sqlite_url, migrated_pg_url) -> None:
    sqlite_path(sqlite_url).parent.mkdir(parents=True)
    sqlite_query(sqlite_url, "CREATE TABLE other (x)")
    result = _backfill(run_weavenn, sqlite_url, migrated_pg_url)
    assert result.returncode == 1
    assert "has no table " in result.stderr and "--table" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    missing = _backfill(run_weavenn, sqlite_url + ".gone", migrated_pg_url)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    assert not sqlite_path(sqlite_url + ".gone").exists()


@pytest.mark.parametrize("name", ["nope", "tasks; DROP TABLE tasks", "outbox"])
def test_refuses_names_that_are_not_application_tables(
    run_weavenn, migrated_sqlite_url, migrated_pg_url, name: str
) -> None:
    result = _backfill(run_weavenn, migrated_sqlite_url, migrated_pg_url, "--table", name)
    assert result.returncode == 2
    assert f"unknown table {name!r}: the application tables are " in result.stderr
    assert "tasks, note_headings" in result.stderr and "outbox" not in result.stderr.split(":")[-1]
    assert pg_query(migrated_pg_url, "SELECT count(*) FROM tasks") == [(0,)]


def test_resume_refuses_a_source_file_rewritten_since_the_checkpoint(
    run_weavenn, migrated_sqlite_url, migrated_pg_url
) -> None:
    insert_sqlite(migrated_sqlite_url, task_rows(10))
    # As if VACUUM had renumbered the rows after the checkpoint was taken.
    pg_query(
        migrated_pg_url,
        'INSERT INTO backfill_checkpoints VALUES (\'tasks\', %s, \'{"rowid": 3, "key": ["gone"]}\','
        " 3, 3, 0, 0, 10, now(), now(), NULL)",
        (migrated_sqlite_url,),
    )
    result = _backfill(run_weavenn, migrated_sqlite_url, migrated_pg_url)
    assert result.returncode == 2
    assert "rewritten since the checkpoint" in result.stderr and "--restart" in result.stderr
