"""`weavenn migrate status`: the timeline read from the databases, with the next step."""

from __future__ import annotations

import json

from tests.migration.conftest import insert_sqlite, task_rows
from weavenn_cli.runtime.migration.tables import application_tables


def _status(run_weavenn, env: dict[str, str]) -> dict:
    result = run_weavenn("migrate", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _states(status: dict) -> dict[str, str]:
    return {check["item"].split(" (")[0]: check["state"] for check in status["checks"]}


def test_walks_the_timeline_from_start_to_retiring_sqlite(
    run_weavenn, migrated_sqlite_url, migrated_pg_url
) -> None:
    env = {"DATABASE_URL": migrated_pg_url, "SECONDARY_DATABASE_URL": migrated_sqlite_url}
    insert_sqlite(migrated_sqlite_url, task_rows(40))

    start = _status(run_weavenn, env)
    assert _states(start) == {
        "primary schema at head": "ok",
        "secondary schema at head": "ok",
        "dual-write": "todo",
        **{f"backfill {table.name}": "todo" for table in application_tables()},
        "verify": "todo",
        "task-service rollout": "info",
    }
    assert start["next_step"] == "weavenn migrate dual-write on"

    assert run_weavenn("migrate", "dual-write", "on", env=env).returncode == 0
    assert _status(run_weavenn, env)["next_step"] == "weavenn migrate backfill"

    assert run_weavenn("migrate", "backfill", env=env).returncode == 0
    after_backfill = _status(run_weavenn, env)
    assert _states(after_backfill)["backfill tasks"] == "ok"
    detail = next(c["detail"] for c in after_backfill["checks"] if c["item"] == "backfill tasks")
    assert detail.startswith("40 of 40 rows read, 40 written, 0 rejected")
    assert after_backfill["next_step"] == "weavenn migrate verify --repair"

    assert run_weavenn("migrate", "verify", env=env).returncode == 0
    verified = _status(run_weavenn, env)
    assert _states(verified)["verify"] == "ok"
    assert verified["next_step"].endswith("weavenn migrate dual-write off")

    assert run_weavenn("migrate", "dual-write", "off", env=env).returncode == 0
    assert _status(run_weavenn, env)["next_step"].startswith("retire the old database sqlite")

    table = run_weavenn("migrate", "status", env=env)
    assert "SQLite → PostgreSQL migration" in table.stdout
    assert "next step: retire the old database" in table.stdout


def test_a_primary_behind_head_asks_for_the_schema_first(
    run_weavenn, pg_url, migrated_sqlite_url
) -> None:
    env = {"DATABASE_URL": pg_url, "SECONDARY_DATABASE_URL": migrated_sqlite_url}
    status = _status(run_weavenn, env)
    assert _states(status)["primary schema at head"] == "todo"
    assert status["next_step"].startswith("weavenn migrate db --database-url postgresql://")


def test_a_missing_sqlite_file_is_reported_not_created(
    run_weavenn, migrated_pg_url, tmp_path
) -> None:
    missing = tmp_path / "nowhere" / "weave-nn.db"
    env = {"DATABASE_URL": migrated_pg_url, "SECONDARY_DATABASE_URL": f"sqlite:///{missing}"}
    status = _status(run_weavenn, env)
    assert _states(status)["secondary schema at head"] == "fail"
    assert status["next_step"] == "point SECONDARY_DATABASE_URL at the existing database"
    assert not missing.exists()


def test_dual_write_stays_on_until_the_monolith_serves_nobody(
    run_weavenn, migrated_sqlite_url, migrated_pg_url
) -> None:
    """Once a rollout has started, the users not yet moved write to SQLite through the
    monolith: switching dual-write off then would keep their writes from PostgreSQL."""
    env = {"DATABASE_URL": migrated_pg_url, "SECONDARY_DATABASE_URL": migrated_sqlite_url}
    insert_sqlite(migrated_sqlite_url, task_rows(5))
    for step in (("dual-write", "on"), ("backfill",), ("verify",)):
        assert run_weavenn("migrate", *step, env=env).returncode == 0
    assert run_weavenn("rollout", "task-service", "25", env=env).returncode == 0

    ramping = _status(run_weavenn, env)
    assert ramping["next_step"] == (
        "weavenn rollout task-service 100 (the monolith still serves 75 % of users), "
        "then: weavenn migrate dual-write off"
    )

    assert run_weavenn("migrate", "dual-write", "off", env=env).returncode == 0
    early = _status(run_weavenn, env)
    dual = next(c for c in early["checks"] if c["item"] == "dual-write")
    assert dual == {
        "item": "dual-write",
        "state": "fail",
        "detail": "off, 0 pending failures, while the monolith still serves 75 % of users "
        "from SQLite",
    }
    assert early["next_step"] == (
        "weavenn migrate dual-write on, or: weavenn rollout task-service 100"
    )

    assert run_weavenn("rollout", "task-service", "100", env=env).returncode == 0
    done = _status(run_weavenn, env)
    assert _states(done)["dual-write"] == "ok"
    assert done["next_step"].startswith("retire the old database sqlite")


def test_the_databases_can_be_given_on_the_command_line(
    run_weavenn, migrated_sqlite_url, migrated_pg_url, tmp_path
) -> None:
    # Nothing exported: DATABASE_URL would be the default SQLite file, which does not exist.
    insert_sqlite(migrated_sqlite_url, task_rows(5))
    result = run_weavenn(
        "migrate", "status", "--json",
        "--database-url", migrated_pg_url,
        "--secondary-database-url", migrated_sqlite_url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert _states(status)["primary schema at head"] == "ok"
    assert _states(status)["secondary schema at head"] == "ok"
    assert status["next_step"] == "weavenn migrate dual-write on"
    assert not (tmp_path / "data").exists()


def test_the_command_line_wins_over_the_environment(
    run_weavenn, migrated_sqlite_url, migrated_pg_url, tmp_path
) -> None:
    missing = f"sqlite:///{tmp_path / 'nowhere.db'}"
    env = {"DATABASE_URL": missing, "SECONDARY_DATABASE_URL": missing}
    result = run_weavenn(
        "migrate", "status", "--json", "--database-url", migrated_pg_url,
        "--secondary-database-url", migrated_sqlite_url, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _states(json.loads(result.stdout))["secondary schema at head"] == "ok"
    only_primary = _status_args(run_weavenn, env, "--database-url", migrated_pg_url)
    assert _states(only_primary)["primary schema at head"] == "ok"
    assert _states(only_primary)["secondary schema at head"] == "fail"


def _status_args(run_weavenn, env: dict[str, str], *args: str) -> dict:
    result = run_weavenn("migrate", "status", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
