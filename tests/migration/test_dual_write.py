"""Dual-write with real databases: the flag, mirrored writes, an unreachable secondary."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.migration.conftest import pg_query, sqlite_query
from weavenn_cli.runtime.db.engine import make_engine
from weavenn_cli.runtime.db.models import Task
from weavenn_cli.runtime.migration import dual_write, verify
from weavenn_cli.runtime.migration.dual_write import DualWriter
from weavenn_cli.runtime.migration.tables import resolve_tables

TASKS = Task.__table__
NOW = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def _task(task_id: str, title: str = "write the report", updated: datetime = NOW) -> dict:
    return {
        "id": task_id,
        "project_id": "p1",
        "title": title,
        "status": "todo",
        "due_date": None,
        "completed": False,
        "created_at": NOW,
        "tags": ["a"],
        "updated_at": updated,
    }


def _write_primary(engine: sa.Engine, row: dict, operation: str = "insert") -> None:
    """The task repository's part: commit on the primary, then hand the row to the writer."""
    with engine.begin() as connection:
        if operation == "insert":
            connection.execute(sa.insert(TASKS), row)
        elif operation == "update":
            connection.execute(sa.update(TASKS).where(TASKS.c.id == row["id"]).values(row))
        else:
            connection.execute(sa.delete(TASKS).where(TASKS.c.id == row["id"]))


@pytest.fixture
def primary(migrated_sqlite_url):
    engine = make_engine(migrated_sqlite_url)
    yield engine
    engine.dispose()


def _status(run_weavenn, primary_url: str, **env: str) -> dict:
    result = run_weavenn(
        "migrate", "dual-write", "status", "--json", env={"DATABASE_URL": primary_url, **env}
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_flag_starts_from_the_setting_and_follows_on_off(run_weavenn, migrated_sqlite_url) -> None:
    assert _status(run_weavenn, migrated_sqlite_url) == {"enabled": False, "pending_failures": 0}
    assert _status(run_weavenn, migrated_sqlite_url, DUAL_WRITE_ENABLED="true")["enabled"] is True
    env = {"DATABASE_URL": migrated_sqlite_url}
    assert run_weavenn("migrate", "dual-write", "on", env=env).returncode == 0
    assert _status(run_weavenn, migrated_sqlite_url)["enabled"] is True
    assert run_weavenn("migrate", "dual-write", "off", env=env).returncode == 0
    # The table now decides, whatever the starting value says.
    assert _status(run_weavenn, migrated_sqlite_url, DUAL_WRITE_ENABLED="true")["enabled"] is False


def test_a_running_writer_follows_a_flip_once_its_cache_expires(
    run_weavenn, primary, migrated_sqlite_url, migrated_pg_url
) -> None:
    fresh = DualWriter(primary, migrated_pg_url, default_enabled=False, ttl=0)
    cached = DualWriter(primary, migrated_pg_url, default_enabled=False, ttl=3600)
    assert (fresh.enabled, cached.enabled) == (False, False)
    assert (
        run_weavenn(
            "migrate", "dual-write", "on", env={"DATABASE_URL": migrated_sqlite_url}
        ).returncode
        == 0
    )
    assert fresh.enabled is True  # re-read: no restart needed
    assert cached.enabled is False  # within its TTL the cached value stands
    assert dual_write.FLAG_TTL_SECONDS * 2 <= 2  # every process follows within 2 seconds


def test_the_switch_reaches_the_processes_on_either_database(
    run_weavenn, tmp_path, migrated_sqlite_url, migrated_pg_url
) -> None:
    """The task service (PostgreSQL first) and the monolith (SQLite first) both mirror during
    the migration; each reads the flag from its own primary, so one switch sets both."""
    engine = make_engine(migrated_sqlite_url)
    monolith = DualWriter(engine, migrated_pg_url, default_enabled=False, ttl=0)
    operator = {"DATABASE_URL": migrated_pg_url, "SECONDARY_DATABASE_URL": migrated_sqlite_url}
    try:
        switched = run_weavenn("migrate", "dual-write", "on", env=operator)
        assert switched.returncode == 0, switched.stderr
        assert monolith.enabled is True
        assert _status(run_weavenn, migrated_pg_url)["enabled"] is True
        assert run_weavenn("migrate", "dual-write", "off", env=operator).returncode == 0
        assert monolith.enabled is False
        assert _status(run_weavenn, migrated_pg_url)["enabled"] is False
    finally:
        monolith.close()
        engine.dispose()
    # A secondary file that does not exist is not created: no process runs on it.
    absent = tmp_path / "nowhere" / "weave-nn.db"
    lone = {"DATABASE_URL": migrated_pg_url, "SECONDARY_DATABASE_URL": f"sqlite:///{absent}"}
    assert run_weavenn("migrate", "dual-write", "on", env=lone).returncode == 0
    assert not absent.exists()


def test_the_switch_fails_whole_on_a_secondary_without_the_schema(
    run_weavenn, tmp_path, migrated_pg_url
) -> None:
    bare = tmp_path / "bare.db"
    sa.create_engine(f"sqlite:///{bare}").connect().close()
    env = {"DATABASE_URL": migrated_pg_url, "SECONDARY_DATABASE_URL": f"sqlite:///{bare}"}
    result = run_weavenn("migrate", "dual-write", "on", env=env)
    assert result.returncode == 1
    assert "could not set the dual-write flag in sqlite:///" in result.stderr
    assert "weavenn migrate db --database-url" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert _status(run_weavenn, migrated_pg_url)["enabled"] is False  # nothing half-switched


def test_writes_are_mirrored_to_the_secondary(primary, migrated_pg_url) -> None:
    dual_write.set_dual_write(str(primary.url), True)
    writer = DualWriter(primary, migrated_pg_url, default_enabled=False)
    try:
        row = _task("t1")
        _write_primary(primary, row)
        assert writer.mirror(TASKS, "insert", row) is True
        updated = {**row, "title": "renamed", "updated_at": NOW + timedelta(seconds=1)}
        _write_primary(primary, updated, "update")
        assert writer.mirror(TASKS, "update", updated) is True
        # A late, older mirror of the same row never overwrites the newer one.
        assert writer.mirror(TASKS, "update", row) is True
        assert pg_query(migrated_pg_url, "SELECT title FROM tasks") == [("renamed",)]
        _write_primary(primary, row, "delete")
        assert writer.mirror(TASKS, "delete", {"id": "t1"}) is True
        assert pg_query(migrated_pg_url, "SELECT count(*) FROM tasks") == [(0,)]
    finally:
        writer.close()


def test_flag_off_writes_nothing_to_the_secondary(primary, migrated_pg_url) -> None:
    writer = DualWriter(primary, migrated_pg_url, default_enabled=False)
    row = _task("t-off")
    _write_primary(primary, row)
    assert writer.mirror(TASKS, "insert", row) is True
    assert pg_query(migrated_pg_url, "SELECT count(*) FROM tasks") == [(0,)]


def test_unreachable_secondary_never_fails_the_write_and_is_repaired(
    run_weavenn, primary, migrated_sqlite_url, migrated_pg_url, pg_proxy
) -> None:
    secondary = pg_proxy.url_for(migrated_pg_url)
    dual_write.set_dual_write(migrated_sqlite_url, True)
    writer = DualWriter(primary, secondary, default_enabled=False)
    try:
        _write_primary(primary, _task("before"))
        assert writer.mirror(TASKS, "insert", _task("before")) is True

        pg_proxy.cut()
        rows = [_task("during-1"), _task("during-2", "second")]
        for row in rows:
            _write_primary(primary, row)
            assert writer.mirror(TASKS, "insert", row) is False  # returned, did not raise
        changed = {**_task("before"), "title": "changed", "updated_at": NOW + timedelta(hours=1)}
        _write_primary(primary, changed, "update")
        assert writer.mirror(TASKS, "update", changed) is False
        _write_primary(primary, rows[1], "delete")
        assert writer.mirror(TASKS, "delete", {"id": "during-2"}) is False

        # Every primary write stands; every failure is on record with its reason.
        assert sorted(r[0] for r in sqlite_query(migrated_sqlite_url, "SELECT id FROM tasks")) == [
            "before",
            "during-1",
        ]
        failures = sqlite_query(
            migrated_sqlite_url,
            "SELECT table_name, key, operation, error FROM dual_write_failures ORDER BY id",
        )
        assert [(t, json.loads(k), op) for t, k, op, _ in failures] == [
            ("tasks", ["during-1"], "insert"),
            ("tasks", ["during-2"], "insert"),
            ("tasks", ["before"], "update"),
            ("tasks", ["during-2"], "delete"),
        ]
        assert all(error for *_, error in failures)
        assert _status(run_weavenn, migrated_sqlite_url)["pending_failures"] == 4

        pg_proxy.restore()
        env = {"DATABASE_URL": migrated_sqlite_url, "SECONDARY_DATABASE_URL": secondary}
        replay = run_weavenn("migrate", "dual-write", "replay", env=env)
        assert replay.returncode == 0, replay.stderr
        assert "3 rows replayed" in replay.stdout
        assert _status(run_weavenn, migrated_sqlite_url) == {
            "enabled": True,
            "pending_failures": 0,
        }
        assert verify.verify(
            migrated_sqlite_url, migrated_pg_url, resolve_tables(["tasks"])
        ).identical
    finally:
        writer.close()


def test_verify_identical_resolves_older_failures(
    run_weavenn, primary, migrated_sqlite_url, migrated_pg_url, pg_proxy
) -> None:
    dual_write.set_dual_write(migrated_sqlite_url, True)
    writer = DualWriter(primary, pg_proxy.url_for(migrated_pg_url), default_enabled=False)
    try:
        pg_proxy.cut()
        _write_primary(primary, _task("lost"))
        assert writer.mirror(TASKS, "insert", _task("lost")) is False
    finally:
        writer.close()
    repaired = run_weavenn(
        "migrate", "verify", "--source", migrated_sqlite_url, "--target", migrated_pg_url,
        "--repair",
    )  # fmt: skip
    assert repaired.returncode == 0, repaired.stderr
    assert _status(run_weavenn, migrated_sqlite_url)["pending_failures"] == 0
