"""The monolith (`weavenn serve`): probes, metrics, OpenAPI, the MVP's /mcp endpoints, the CLI."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Server, StartServer, free_port

pytestmark = pytest.mark.xdist_group("api-monolith")


@pytest.fixture(scope="module")
def monolith(module_server: StartServer, module_db_url: str, module_vault: Path) -> Server:
    return module_server("all", {"DATABASE_URL": module_db_url, "VAULT_PATH": str(module_vault)})


@pytest.fixture
def api(monolith: Server) -> Iterator[httpx.Client]:
    with monolith.client() as client:
        yield client


def test_health_ready_and_docs(api: httpx.Client) -> None:
    assert api.get("/health").json() == {"status": "ok", "service": "weave-nn"}
    ready = api.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"]["ok"] is True
    assert ready.json()["checks"]["files"]["ok"] is True
    assert "swagger" in api.get("/docs").text.lower()
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/v1/tasks", "/v2/tasks", "/tasks", "/files", "/git/status", "/mcp/create_note"):
        assert path in paths, path


def test_metrics_label_route_templates_not_raw_paths(api: httpx.Client) -> None:
    task = api.post("/tasks", json={"title": "m", "project_id": "metrics"}).json()
    api.get(f"/tasks/{task['id']}")
    api.get("/no/such/path")
    metrics = api.get("/metrics").text
    assert (
        'weavenn_http_requests_total{endpoint="/tasks/{task_id}",method="GET",'
        'service="weave-nn",status="200"}' in metrics
    )
    assert 'endpoint="<unmatched>",method="GET",service="weave-nn",status="404"' in metrics
    assert task["id"] not in metrics
    assert "weavenn_http_request_duration_seconds_bucket" in metrics


def test_unknown_routes_answer_json(api: httpx.Client) -> None:
    missing = api.get("/no/such/path")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    wrong_method = api.put("/tasks")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    broken_json = api.post("/tasks", content=b"{nope", headers={"Content-Type": "application/json"})
    assert broken_json.status_code == 422


def without_volatile(note: dict) -> dict:
    return {k: v for k, v in note.items() if k not in ("modified_at", "size")}


def test_legacy_note_endpoints_answer_like_the_new_ones(api: httpx.Client) -> None:
    created = api.post(
        "/mcp/create_note", json={"path": "legacy/one", "content": "hi\n", "frontmatter": {"a": 1}}
    )
    assert created.status_code == 201
    assert created.json()["path"] == "legacy/one.md"
    read = api.post("/mcp/read_note", json={"path": "legacy/one"})
    assert read.json() == api.get("/files/legacy/one.md").json()

    updated = api.post("/mcp/update_note", json={"path": "legacy/one", "frontmatter": {"b": 2}})
    assert updated.json()["frontmatter"] == {"a": 1, "b": 2}
    assert without_volatile(updated.json()) == without_volatile(api.get("/files/legacy/one").json())

    listed = api.post("/mcp/list_notes", json={"pattern": "legacy/*"})
    assert listed.json() == api.get("/files", params={"pattern": "legacy/*"}).json()

    duplicate = api.post("/mcp/create_note", json={"path": "legacy/one"})
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "NOTE_EXISTS"
    escape = api.post("/mcp/read_note", json={"path": "../../etc/passwd"})
    assert escape.json()["error"]["code"] == "INVALID_PATH"

    assert api.post("/mcp/delete_note", json={"path": "legacy/one"}).status_code == 204
    gone = api.post("/mcp/read_note", json={"path": "legacy/one"})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "NOTE_NOT_FOUND"


def test_legacy_task_endpoints_answer_like_the_new_ones(api: httpx.Client) -> None:
    created = api.post("/mcp/create_task", json={"title": "legacy", "project_id": "mcp"})
    assert created.status_code == 201
    task = created.json()
    assert api.get(f"/tasks/{task['id']}").json() == task

    listed = api.post("/mcp/list_tasks", json={"project_id": "mcp"})
    assert listed.json() == api.get("/tasks", params={"project_id": "mcp"}).json()

    completed = api.post("/mcp/complete_task", json={"task_id": task["id"]})
    assert completed.json()["completed"] is True and completed.json()["status"] == "done"
    assert api.get(f"/tasks/{task['id']}").json() == completed.json()
    missing = api.post("/mcp/complete_task", json={"task_id": "no-such-task"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "TASK_NOT_FOUND"


def test_not_ready_while_the_database_does_not_answer(server: StartServer, tmp_path: Path) -> None:
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/weave"
    started = server("task-service", {"DATABASE_URL": unreachable})
    with started.client() as api:
        assert api.get("/health").status_code == 200
        ready = api.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not ready"
        assert ready.json()["checks"]["database"]["ok"] is False
        down = api.get("/v2/tasks")
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


def test_not_ready_until_the_broker_answers(
    server: StartServer, migrated_sqlite_url: str, rabbitmq_url: str
) -> None:
    broken = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    for url, status in ((broken, 503), (rabbitmq_url, 200)):
        started = server("task-service", {"DATABASE_URL": migrated_sqlite_url, "RABBITMQ_URL": url})
        with started.client() as api:
            answer = api.get("/ready")
            assert answer.status_code == status, answer.text
            assert answer.json()["checks"]["broker"]["ok"] is (status == 200)


def test_several_workers_serve_and_add_up_their_metrics(
    server: StartServer, migrated_sqlite_url: str
) -> None:
    started = server("task-service", {"DATABASE_URL": migrated_sqlite_url}, "--workers", "2")
    with started.client() as api:
        for _ in range(6):
            assert api.get("/v2/tasks").status_code == 200
        metrics = api.get("/metrics").text
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("weavenn_http_requests_total") and 'endpoint="/v2/tasks"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) == 6.0
    assert started.stop() == 0


def test_unknown_service_is_bad_usage(run_weavenn) -> None:
    result = run_weavenn("serve", "billing-service")
    assert result.returncode == 2
    assert "billing-service" in result.stderr and "task-service" in result.stderr
    assert "Traceback" not in result.stderr


def test_busy_port_is_one_clear_error(run_weavenn) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_weavenn("serve", "git-service", "--port", str(port))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and f"127.0.0.1:{port}" in errors[0]
    assert "Traceback" not in result.stderr


def test_reload_with_workers_is_bad_usage(run_weavenn) -> None:
    result = run_weavenn("serve", "--reload", "--workers", "2", "--port", str(free_port()))
    assert result.returncode == 2
    assert "--reload" in result.stderr
