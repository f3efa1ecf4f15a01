"""Schema migrations on real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from weavenn_cli.app import app
from weavenn_cli.runtime import schema
from weavenn_cli.runtime.db import revisions
from weavenn_cli.runtime.db.engine import make_engine

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


def _columns(url: str, table: str) -> dict[str, dict[str, object]]:
    engine = make_engine(url)
    try:
        return {c["name"]: c for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trip(empty_url: str) -> None:
    head = schema.head_revisions()
    assert runner.invoke(app, ["migrate", "db", "--database-url", empty_url]).exit_code == 0
    assert schema.current_revisions(empty_url) == head
    assert "tasks" in _tables(empty_url)

    result = runner.invoke(app, ["migrate", "downgrade", "base", "--database-url", empty_url])
    assert result.exit_code == 0, result.output
    assert schema.current_revisions(empty_url) == []
    assert "tasks" not in _tables(empty_url)

    assert runner.invoke(app, ["migrate", "db", "--database-url", empty_url]).exit_code == 0
    assert schema.current_revisions(empty_url) == head


def test_tasks_table_is_the_designs_plus_tags_and_updated_at(empty_url: str) -> None:
    schema.upgrade(empty_url)
    columns = _columns(empty_url, "tasks")
    assert list(columns) == [
        "id",
        "project_id",
        "title",
        "status",
        "due_date",
        "completed",
        "created_at",
        "tags",
        "updated_at",
        # PostgreSQL keeps each task's API JSON beside it, generated on write (revision 013).
        *(["api_json"] if empty_url.startswith("postgresql") else []),
    ]
    assert not columns["title"]["nullable"]
    assert columns["due_date"]["nullable"]
    assert not columns["updated_at"]["nullable"]
    engine = make_engine(empty_url)
    indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(engine).get_indexes("tasks")}
    engine.dispose()
    assert indexes == {
        "ix_tasks_project_id": ["project_id"],
        "ix_tasks_status": ["status"],
        "ix_tasks_created_at_id": ["created_at", "id"],
    }


def test_each_revision_steps_down_and_up(empty_url: str) -> None:
    revisions = [r.revision for r in reversed(schema.history())]
    for revision in revisions:
        schema.upgrade(empty_url, revision)
        assert schema.current_revisions(empty_url) == [revision]
    for revision in reversed(revisions[:-1]):
        result = runner.invoke(app, ["migrate", "downgrade", "-1", "--database-url", empty_url])
        assert result.exit_code == 0, result.output
        assert schema.current_revisions(empty_url) == [revision]


def test_updated_at_of_existing_rows_is_their_creation_time(empty_url: str) -> None:
    schema.upgrade(empty_url, "002")
    created = datetime(2025, 10, 23, 9, 30, tzinfo=UTC)
    engine = make_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO tasks (id, project_id, title, status, completed, created_at) "
                "VALUES ('t1', 'p', 'Old task', 'todo', false, :created)"
            ),
            {"created": created if engine.dialect.name != "sqlite" else "2025-10-23 09:30:00"},
        )
    schema.upgrade(empty_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT created_at, updated_at FROM tasks")).one()
    engine.dispose()
    assert row.updated_at == row.created_at


def _payload_compression(url: str) -> str:
    engine = make_engine(url)
    with engine.connect() as conn:
        method = conn.scalar(
            sa.text(
                "SELECT attcompression FROM pg_attribute "
                "WHERE attrelid = 'outbox'::regclass AND attname = 'payload'"
            )
        )
    engine.dispose()
    return str(method)


def test_outbox_payloads_are_lz4_compressed_on_postgresql(pg_url: str) -> None:
    schema.upgrade(pg_url, "011")
    assert _payload_compression(pg_url) in ("", "\x00")  # the server's default
    schema.upgrade(pg_url)
    assert _payload_compression(pg_url) == "l"
    result = runner.invoke(app, ["migrate", "downgrade", "011", "--database-url", pg_url])
    assert result.exit_code == 0, result.output
    assert _payload_compression(pg_url) == "p"


def test_check_is_clean_at_head(any_migrated_url: str) -> None:
    result = runner.invoke(app, ["migrate", "check", "--database-url", any_migrated_url])
    assert result.exit_code == 0, result.output
    assert "models match migrations" in result.stdout


def test_check_fails_when_models_and_database_disagree(migrated_sqlite_url: str) -> None:
    engine = make_engine(migrated_sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_tasks_status"))
    engine.dispose()
    result = runner.invoke(app, ["migrate", "check", "--database-url", migrated_sqlite_url])
    assert result.exit_code == 1
    assert "ix_tasks_status" in result.output


def test_check_refuses_a_database_behind_head(sqlite_url: str) -> None:
    schema.upgrade(sqlite_url, "001")
    result = runner.invoke(app, ["migrate", "check", "--database-url", sqlite_url])
    assert result.exit_code == 1
    assert "not at head" in result.output


def test_there_is_exactly_one_head() -> None:
    assert len(schema.head_revisions()) == 1


def test_revisions_read_without_alembic_agree_with_alembic(empty_url: str) -> None:
    # backfill and verify check the target's revision this way, to skip loading alembic.
    assert list(revisions.head_revisions()) == schema.head_revisions()
    assert revisions.current_revisions(empty_url) == []
    schema.upgrade(empty_url, "003")
    assert revisions.current_revisions(empty_url) == ["003"]
    schema.upgrade(empty_url)
    assert revisions.current_revisions(empty_url) == schema.current_revisions(empty_url)


def test_current_and_history_as_json(migrated_sqlite_url: str) -> None:
    result = runner.invoke(
        app, ["migrate", "current", "--json", "--database-url", migrated_sqlite_url]
    )
    data = json.loads(result.stdout)
    assert data["at_head"] is True and data["current"] == schema.head_revisions()
    history = json.loads(runner.invoke(app, ["migrate", "history", "--json"]).stdout)
    assert [r["revision"] for r in history][-3:] == ["003", "002", "001"]
    assert history[0]["is_head"] is True


def test_sql_mode_prints_sql_and_touches_nothing(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path / 'never.db'}", "postgresql://u:p@db.invalid/weave_nn"):
        result = runner.invoke(app, ["migrate", "db", "--sql", "--database-url", url])
        assert result.exit_code == 0, result.output
        assert "CREATE TABLE tasks" in result.stdout
        assert "CREATE INDEX ix_tasks_status" in result.stdout
    assert not (tmp_path / "never.db").exists()


def test_unknown_revision_is_bad_usage(run_weavenn, sqlite_url: str) -> None:
    result = run_weavenn("migrate", "db", "--revision", "nope", "--database-url", sqlite_url)
    assert result.returncode == 2
    assert result.stderr.startswith("error: Can't locate revision identified by 'nope'")
    assert "Traceback" not in result.stderr


def test_malformed_database_url_is_bad_usage(run_weavenn) -> None:
    result = run_weavenn("migrate", "db", "--database-url", "not a url")
    assert result.returncode == 2
    assert "is not a database URL" in result.stderr


def test_database_url_setting_is_the_default_target(run_weavenn, sqlite_url: str) -> None:
    result = run_weavenn("migrate", "db", env={"DATABASE_URL": sqlite_url})
    assert result.returncode == 0, result.stderr
    assert schema.current_revisions(sqlite_url) == schema.head_revisions()


def test_default_database_lives_under_data(run_weavenn, tmp_path: Path) -> None:
    result = run_weavenn("migrate", "db")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "weave-nn.db").is_file()


def test_plain_alembic_uses_the_same_environment(pg_url: str, tmp_path: Path) -> None:
    alembic = Path(sys.executable).parent / "alembic"
    result = subprocess.run(
        [str(alembic), "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        env={"DATABASE_URL": pg_url, "PATH": str(alembic.parent)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert schema.current_revisions(pg_url) == schema.head_revisions()


def test_migrations_ship_inside_the_package() -> None:
    from weavenn_cli.runtime.resources import migrations_dir, templates_dir

    versions = sorted(p.name for p in (migrations_dir() / "versions").glob("*.py"))
    assert versions[:3] == [
        "001_create_tasks_table.py",
        "002_add_tags_column.py",
        "003_add_tasks_updated_at.py",
    ]
    assert templates_dir().is_dir()
