"""`weavenn migrate verify` between a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from tests.migration.conftest import insert_sqlite, pg_query, sqlite_query, task_rows
from weavenn_cli.runtime.db.engine import make_engine
from weavenn_cli.runtime.db.models import Task
from weavenn_cli.runtime.migration import backfill, verify
from weavenn_cli.runtime.migration.dual_write import DualWriter
from weavenn_cli.runtime.migration.tables import application_tables, resolve_tables

ROWS = 3_000  # enough for several levels of ranges (leaves hold 256 rows)


@pytest.fixture
def copied(migrated_sqlite_url: str, migrated_pg_url: str) -> tuple[str, str]:
    """The same tasks on both sides."""
    insert_sqlite(migrated_sqlite_url, task_rows(ROWS))
    backfill.backfill(migrated_sqlite_url, migrated_pg_url, resolve_tables(["tasks"]))
    return migrated_sqlite_url, migrated_pg_url


def _verify(run_weavenn, source: str, target: str, *args: str):
    result = run_weavenn("migrate", "verify", "--source", source, "--target", target, *args)
    report = json.loads(result.stdout) if "--json" in args and result.stdout else None
    return result, report


def _ids(url: str) -> list[str]:
    return [row[0] for row in sqlite_query(url, "SELECT id FROM tasks ORDER BY id")]


def test_identical_tables_report_nothing_and_send_few_rows(run_weavenn, copied) -> None:
    source, target = copied
    result, report = _verify(run_weavenn, source, target, "--json")
    assert result.returncode == 0, result.stderr
    assert report["identical"] is True
    assert set(report["tables"]) == {table.name for table in application_tables()}
    assert report["tables"]["tasks"] == {
        "source_rows": ROWS,
        "target_rows": ROWS,
        "missing_in_target": [],
        "missing_in_source": [],
        "different": [],
    }
    assert 0 < report["stats"]["rows_sent_to_client"] < 2 * ROWS * 0.1


def test_finds_every_planted_difference_and_nothing_else(run_weavenn, copied) -> None:
    source, target = copied
    ids = _ids(source)
    missing, changed, micro, emptied, nulled = ids[5], ids[700], ids[1500], ids[2200], ids[2900]
    pg_query(target, "DELETE FROM tasks WHERE id = %s", (missing,))
    pg_query(
        target,
        "INSERT INTO tasks VALUES ('~extra', 'p', 't', 'todo', NULL, false, now(), NULL, now())",
    )
    pg_query(target, "UPDATE tasks SET title = title || '.' WHERE id = %s", (changed,))
    pg_query(
        target,
        "UPDATE tasks SET updated_at = updated_at + interval '1 microsecond' WHERE id = %s",
        (micro,),
    )
    sqlite_query(source, "UPDATE tasks SET status = '' WHERE id = ?", (emptied,))
    sqlite_query(source, "UPDATE tasks SET tags = NULL WHERE id = ?", (nulled,))
    pg_query(target, "UPDATE tasks SET tags = 'null'::jsonb WHERE id = %s", (nulled,))

    result, report = _verify(run_weavenn, source, target, "--json")
    assert result.returncode == 1, result.stderr
    tasks = report["tables"]["tasks"]
    assert tasks["missing_in_target"] == [missing]
    assert tasks["missing_in_source"] == ["~extra"]
    assert sorted(tasks["different"], key=lambda d: d["key"]) == sorted(
        [
            {"key": changed, "columns": ["title"]},
            {"key": micro, "columns": ["updated_at"]},
            {"key": emptied, "columns": ["status"]},
            {"key": nulled, "columns": ["tags"]},
        ],
        key=lambda d: d["key"],
    )
    assert (tasks["source_rows"], tasks["target_rows"]) == (ROWS, ROWS)
    assert report["stats"]["rows_sent_to_client"] < 2 * ROWS


def test_repair_makes_the_target_equal_and_delete_extra_removes_the_rest(
    run_weavenn, copied
) -> None:
    source, target = copied
    ids = _ids(source)
    pg_query(target, "DELETE FROM tasks WHERE id = %s", (ids[10],))
    pg_query(target, "UPDATE tasks SET completed = NOT completed WHERE id = %s", (ids[20],))
    pg_query(
        target,
        "INSERT INTO tasks VALUES ('~extra', 'p', 't', 'todo', NULL, false, now(), NULL, now())",
    )
    result, report = _verify(run_weavenn, source, target, "--repair", "--json")
    assert result.returncode == 1  # the extra row stays without --delete-extra
    assert report["repaired"] == 2
    assert report["tables"]["tasks"]["missing_in_source"] == ["~extra"]
    assert report["tables"]["tasks"]["different"] == []

    result, report = _verify(run_weavenn, source, target, "--repair", "--delete-extra", "--json")
    assert result.returncode == 0, result.stderr
    assert report["identical"] is True and report["repaired"] == 1
    assert pg_query(target, "SELECT count(*) FROM tasks") == [(ROWS,)]

    last = verify.last_verify_result(target)
    assert last is not None and last.identical and "tasks" in last.tables
    runs = pg_query(target, "SELECT identical, differences, repaired FROM verify_runs ORDER BY id")
    assert runs == [(False, 1, 2), (True, 0, 1)]


def test_where_limits_the_comparison_to_matching_rows(run_weavenn, copied) -> None:
    source, target = copied
    pg_query(target, "UPDATE tasks SET title = 'x' WHERE project_id = 'project-1'")
    result, report = _verify(
        run_weavenn, source, target, "--table", "tasks", "--where", "project_id = 'project-2'",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = sum(1 for i in range(ROWS) if i % 7 == 2)
    assert report["tables"]["tasks"]["source_rows"] == expected


def test_text_report_names_the_differences(run_weavenn, copied) -> None:
    source, target = copied
    pg_query(target, "UPDATE tasks SET title = 'x' WHERE id = %s", (_ids(source)[1],))
    result, _ = _verify(run_weavenn, source, target)
    assert result.returncode == 1
    assert f"tasks different: {_ids(source)[1]} (title)" in result.stdout
    assert "1 differences" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--table", "tasks WHERE 1=1"), "unknown table 'tasks WHERE 1=1'"),
        (("--table", "tasks", "--where", "x = 1"), "--where 'x = 1' failed on sqlite"),
        (("--where", "x = 1"), "--where is a condition on one table: name it with --table"),
        (("--delete-extra",), "--delete-extra only goes with --repair"),
    ],
)
def test_bad_input_is_exit_2_with_one_line(run_weavenn, copied, args, message) -> None:
    source, target = copied
    result, _ = _verify(run_weavenn, source, target, *args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_unreachable_target_is_exit_2(run_weavenn, migrated_sqlite_url) -> None:
    result, _ = _verify(
        run_weavenn, migrated_sqlite_url, "postgresql://nobody@127.0.0.1:1/x", "--json"
    )
    assert result.returncode == 2
    assert "cannot reach database" in result.stderr


def _in_flight_task(sqlite_url: str) -> dict:
    """A task the primary (SQLite here) has just committed; its mirror write is still to come."""
    now = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
    row = {
        "id": "in-flight",
        "project_id": "p",
        "title": "written a moment ago",
        "status": "todo",
        "due_date": None,
        "completed": False,
        "created_at": now,
        "tags": [],
        "updated_at": now,
    }
    engine = make_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(sa.insert(Task.__table__), row)
    engine.dispose()
    return row


def test_a_write_in_flight_between_the_databases_is_not_a_difference(
    copied, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dual-write applies a write to the second database right after the first committed it:
    verify reads a leaf that differs again after a pause, where the mirror write lands."""
    source, target = copied
    row = _in_flight_task(source)
    primary = make_engine(source)
    mirror = DualWriter(primary, target, default_enabled=True)
    pauses: list[float] = []

    def mirror_lands(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 1:
            assert mirror.mirror(Task.__table__, "insert", row) is True

    monkeypatch.setattr(verify, "_settle", mirror_lands)
    try:
        report = verify.verify(source, target, resolve_tables(["tasks"]))
    finally:
        mirror.close()
        primary.dispose()
    assert report.identical, report.as_dict()
    assert pauses == [verify.RECHECK_DELAYS[0]]


def test_a_difference_that_stays_is_reported_after_the_rereads(
    copied, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = copied
    _in_flight_task(source)
    pauses: list[float] = []
    monkeypatch.setattr(verify, "_settle", pauses.append)
    report = verify.verify(source, target, resolve_tables(["tasks"]))
    assert report.tables["tasks"].missing_in_target == ["in-flight"]
    assert pauses == list(verify.RECHECK_DELAYS)
