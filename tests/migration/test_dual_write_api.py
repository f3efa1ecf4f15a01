"""Dual-write through the HTTP API: `weavenn serve task-service` on a SQLite primary, mirroring
to PostgreSQL behind a TCP proxy the test cuts and restores."""

from __future__ import annotations

import json
import time

import pytest

from tests.migration.conftest import TcpProxy, pg_query
from tests.servers import start_server
from weavenn_cli.runtime.migration import verify
from weavenn_cli.runtime.migration.tables import resolve_tables

pytestmark = pytest.mark.xdist_group("api-tasks")


def _pending(run_weavenn, primary: str) -> int:
    result = run_weavenn("migrate", "dual-write", "status", "--json", env={"DATABASE_URL": primary})
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["pending_failures"])


def _titles(pg_url: str) -> dict[str, str]:
    return dict(pg_query(pg_url, "SELECT id, title FROM tasks"))


@pytest.fixture
def task_service(weavenn_bin, tmp_path, migrated_sqlite_url, migrated_pg_url, pg_proxy):
    env = {
        "DATABASE_URL": migrated_sqlite_url,
        "SECONDARY_DATABASE_URL": pg_proxy.url_for(migrated_pg_url),
    }
    server = start_server(weavenn_bin, tmp_path / "servers", "task-service", env)
    yield server, env
    server.stop()


def test_task_writes_reach_the_secondary_and_survive_its_outage(
    task_service, run_weavenn, migrated_sqlite_url: str, migrated_pg_url: str, pg_proxy: TcpProxy
) -> None:
    server, env = task_service
    api = server.client()

    # Off by default (DUAL_WRITE_ENABLED unset): nothing is mirrored.
    quiet = api.post("/v2/tasks", json={"title": "before", "project_id": "p"})
    assert quiet.status_code == 201
    assert _titles(migrated_pg_url) == {}

    assert run_weavenn("migrate", "dual-write", "on", env=env).returncode == 0
    time.sleep(1.1)  # the server re-reads the flag once its one-second cache expires
    created = api.post("/v2/tasks", json={"title": "mirrored", "project_id": "p"}).json()
    assert _titles(migrated_pg_url) == {created["id"]: "mirrored"}

    pg_proxy.cut()
    during = api.post("/v2/tasks", json={"title": "during outage", "project_id": "p"})
    assert during.status_code == 201
    patched = api.patch(f"/v2/tasks/{created['id']}", json={"title": "renamed"})
    assert patched.status_code == 200
    assert api.delete(f"/v2/tasks/{quiet.json()['id']}").status_code == 204
    assert _pending(run_weavenn, migrated_sqlite_url) == 3

    pg_proxy.restore()
    replay = run_weavenn("migrate", "dual-write", "replay", env=env)
    assert replay.returncode == 0, replay.stderr
    assert _pending(run_weavenn, migrated_sqlite_url) == 0
    assert _titles(migrated_pg_url) == {
        created["id"]: "renamed",
        during.json()["id"]: "during outage",
    }
    # The task written while dual-write was off was deleted since: both sides now agree.
    report = verify.verify(migrated_sqlite_url, migrated_pg_url, resolve_tables(["tasks"]))
    assert report.identical, report.as_dict()


def test_the_monoliths_failed_mirror_writes_are_counted_and_replayed(
    weavenn_bin, tmp_path, run_weavenn, migrated_sqlite_url, migrated_pg_url, pg_proxy: TcpProxy
) -> None:
    """The monolith serves the legacy side on SQLite and mirrors to PostgreSQL: what it failed
    to mirror is recorded in SQLite, which the operator's commands (PostgreSQL first) read too."""
    monolith_env = {
        "DATABASE_URL": migrated_sqlite_url,
        "SECONDARY_DATABASE_URL": pg_proxy.url_for(migrated_pg_url),
        "VAULT_PATH": str(tmp_path),
    }
    operator = {"DATABASE_URL": migrated_pg_url, "SECONDARY_DATABASE_URL": migrated_sqlite_url}
    assert run_weavenn("migrate", "dual-write", "on", env=operator).returncode == 0
    monolith = start_server(weavenn_bin, tmp_path / "servers", "all", monolith_env)
    try:
        pg_proxy.cut()
        written = monolith.client().post("/v2/tasks", json={"title": "legacy", "project_id": "p"})
        assert written.status_code == 201
    finally:
        monolith.stop()
    status = json.loads(run_weavenn("migrate", "status", "--json", env=operator).stdout)
    dual = next(check for check in status["checks"] if check["item"] == "dual-write")
    assert dual["detail"] == "on, 1 pending failures"

    pg_proxy.restore()
    replay = run_weavenn("migrate", "dual-write", "replay", env=operator)
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.strip() == "1 rows replayed"
    assert _titles(migrated_pg_url) == {written.json()["id"]: "legacy"}
    status = json.loads(run_weavenn("migrate", "status", "--json", env=operator).stdout)
    dual = next(check for check in status["checks"] if check["item"] == "dual-write")
    assert dual["detail"] == "on, 0 pending failures"
