"""The gateway in front of the monolith and the extracted services (every user on the new side
here; tests/rollout covers the shares), and the monolith using the services remotely."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Server, StartServer, free_port
from tests.api.test_tasks import outbox_events

pytestmark = pytest.mark.xdist_group("api-gateway")

KEY = {"X-API-Key": "gateway-key"}


@pytest.fixture(scope="module")
def services(
    module_server: StartServer, module_pg_url: str, module_vault: Path
) -> dict[str, Server]:
    return {
        "task": module_server("task-service", {"DATABASE_URL": module_pg_url}),
        "file": module_server("file-service", {"VAULT_PATH": str(module_vault)}),
        "git": module_server("git-service", {"VAULT_PATH": str(module_vault)}),
    }


@pytest.fixture(scope="module")
def monolith(module_server: StartServer, module_sqlite_url: str, tmp_path_factory) -> Server:
    vault = tmp_path_factory.mktemp("monolith-vault")
    return module_server(
        "all",
        {"DATABASE_URL": module_sqlite_url, "VAULT_PATH": str(vault), "API_KEY": "gateway-key"},
    )


@pytest.fixture(scope="module")
def gateway(
    module_server: StartServer,
    services: dict[str, Server],
    monolith: Server,
    module_sqlite_url: str,
) -> Server:
    return module_server(
        "gateway",
        {
            "DATABASE_URL": module_sqlite_url,
            "MONOLITH_URL": monolith.url,
            "TASK_SERVICE_URL": services["task"].url,
            "FILE_SERVICE_URL": services["file"].url,
            "GIT_SERVICE_URL": services["git"].url,
            "TASK_SERVICE_ROLLOUT_PERCENTAGE": "100",
            "FILE_SERVICE_ROLLOUT_PERCENTAGE": "100",
            "GIT_SERVICE_ROLLOUT_PERCENTAGE": "100",
            "API_KEY": "gateway-key",
        },
    )


@pytest.fixture
def api(gateway: Server) -> Iterator[httpx.Client]:
    with gateway.client(headers=KEY) as client:
        yield client


def test_routes_each_prefix_to_its_service(
    api: httpx.Client, services: dict[str, Server], module_pg_url: str, module_vault: Path
) -> None:
    created = api.post(
        "/v2/tasks?ignored=1",
        json={"title": "through the gateway", "project_id": "gw"},
        headers={"X-User-Id": "grace"},
    )
    assert created.status_code == 201, created.text
    task = created.json()
    with services["task"].client() as direct:
        assert direct.get(f"/v2/tasks/{task['id']}").json() == task
    assert api.get(f"/v1/tasks/{task['id']}").headers["deprecation"].startswith("@")
    listed = api.get("/tasks", params={"project_id": "gw"}).json()["items"]
    assert [t["id"] for t in listed] == [task["id"]]
    assert outbox_events(module_pg_url, task["id"])[0]["user_id"] == "grace"

    note = api.post("/files", json={"path": "via-gateway", "content": "routed\n"})
    assert note.status_code == 201
    assert (module_vault / "via-gateway.md").read_text() == "routed\n"
    status = api.get("/git/status").json()
    assert "via-gateway.md" in {f["path"] for f in status["files"]}


def test_service_errors_pass_through_unchanged(api: httpx.Client) -> None:
    missing = api.get("/files/nowhere.md")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOTE_NOT_FOUND"
    traversal = api.get("/files/%2e%2e/secret")
    assert traversal.json()["error"]["code"] == "INVALID_PATH"


def test_gateway_checks_the_key_before_forwarding(gateway: Server) -> None:
    with gateway.client() as anonymous:
        refused = anonymous.get("/v2/tasks")
        assert refused.status_code == 401
        assert anonymous.get("/health").json() == {"status": "ok", "service": "gateway"}
        assert anonymous.get("/ready").status_code == 200


def test_every_other_path_goes_to_the_monolith(api: httpx.Client) -> None:
    missing = api.get("/no/route")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no endpoint GET /no/route"
    created = api.post("/mcp/create_task", json={"title": "via the façade", "project_id": "mvp"})
    assert created.status_code == 201, created.text
    assert created.json()["title"] == "via the façade"


def test_unreachable_monolith_is_a_json_502(server: StartServer) -> None:
    started = server(
        "gateway",
        {
            "GIT_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
            "MONOLITH_URL": f"http://127.0.0.1:{free_port()}",
        },
    )
    with started.client() as api:
        answer = api.get("/git/status")
        assert answer.status_code == 502
        assert answer.headers["x-weavenn-route"] == "legacy"
        assert answer.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert answer.json()["error"]["message"].startswith("cannot reach monolith")
        assert answer.json()["error"]["request_id"] == answer.headers["x-request-id"]


class SlowService(BaseHTTPRequestHandler):
    """A stand-in service that takes a while to answer, to catch the gateway mid-request."""

    delay = 1.5

    def do_GET(self) -> None:
        time.sleep(self.delay)
        body = json.dumps({"slow": True, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def slow_service() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowService)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_sigterm_drains_requests_in_flight(server: StartServer, slow_service: str) -> None:
    started = server("gateway", {"MONOLITH_URL": slow_service})
    with ThreadPoolExecutor(2) as pool, started.client() as api:
        in_flight = [pool.submit(api.get, f"/tasks/{n}") for n in range(2)]
        time.sleep(0.5)  # both requests are now waiting on the slow service
        started.process.send_signal(signal.SIGTERM)
        answers = [future.result(timeout=30) for future in in_flight]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == {"slow": True, "path": "/tasks/0"}
    # uvicorn re-raises the signal once drained, so the exit status says "ended by SIGTERM".
    assert started.process.wait(30) in (0, -signal.SIGTERM)
    with pytest.raises(httpx.TransportError):
        httpx.get(started.url + "/health", timeout=2)


def test_monolith_on_kubernetes_uses_the_remote_services(
    server: StartServer, services: dict[str, Server], module_vault: Path, tmp_path: Path
) -> None:
    monolith = server(
        "all",
        {
            "DEPLOYMENT_MODE": "kubernetes",
            "TASK_SERVICE_URL": services["task"].url,
            "FILE_SERVICE_URL": services["file"].url,
            "VAULT_PATH": str(tmp_path / "not-used"),
            "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/not-used",
        },
    )
    with monolith.client() as api:
        note = api.post("/mcp/create_note", json={"path": "remote/one", "content": "far\n"})
        assert note.status_code == 201, note.text
        assert (module_vault / "remote" / "one.md").read_text() == "far\n"
        assert api.get("/files/remote/one.md").json()["content"] == "far\n"
        missing = api.get("/files/remote/none.md")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "NOTE_NOT_FOUND"

        task = api.post("/mcp/create_task", json={"title": "remote", "project_id": "k8s"}).json()
        with services["task"].client() as direct:
            assert direct.get(f"/v2/tasks/{task['id']}").json() == task
        done = api.post("/mcp/complete_task", json={"task_id": task["id"]}).json()
        assert done["completed"] is True
        assert api.get("/tasks", params={"project_id": "k8s"}).json()["items"] == [done]
        assert api.get("/ready").status_code == 200
