"""The file service backed by the Obsidian Local REST API plugin.

Obsidian cannot run here, so the test starts a stand-in: a local HTTPS server with its own
self-signed certificate that answers like the plugin's documented API (`GET /`, `GET/PUT/DELETE
/vault/{path}`, folder listings as `{"files": [...]}` with folders ending in `/`, notes as
`application/vnd.olrapi.note+json`, Bearer authentication, `{"errorCode", "message"}` errors).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.api.conftest import Server, StartServer

pytestmark = pytest.mark.xdist_group("api-obsidian")

API_KEY = "obsidian-test-key"


class ObsidianRestApiStandIn(BaseHTTPRequestHandler):
    """Serves `vault` the way the Obsidian Local REST API plugin does."""

    vault: Path
    seen_authorization: list[str]

    def do_GET(self) -> None:
        path = self._vault_path()
        if self.path == "/":
            authorized = self.headers.get("Authorization") == f"Bearer {API_KEY}"
            self._json(
                200,
                {"status": "OK", "service": "Obsidian Local REST API", "authenticated": authorized},
            )
            return
        if path is None:
            return
        target = self.vault / path
        if self.path.endswith("/"):
            if not target.is_dir():
                self._error(404, 40400, "Not Found")
                return
            names = [c.name + "/" if c.is_dir() else c.name for c in sorted(target.iterdir())]
            self._json(200, {"files": names})
            return
        if not target.is_file():
            self._error(404, 40400, "File not found")
            return
        text = target.read_text()
        if self.headers.get("Accept") == "application/vnd.olrapi.note+json":
            stat = target.stat()
            self._json(
                200,
                {
                    "content": text,
                    "frontmatter": {},
                    "path": path,
                    "tags": [],
                    "stat": {
                        "ctime": int(stat.st_ctime * 1000),
                        "mtime": int(stat.st_mtime * 1000),
                        "size": stat.st_size,
                    },
                },
            )
            return
        self._send(200, text.encode(), "text/markdown")

    def do_PUT(self) -> None:
        path = self._vault_path()
        if path is None:
            return
        target = self.vault / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self._send(204, b"", None)

    def do_DELETE(self) -> None:
        path = self._vault_path()
        if path is None:
            return
        target = self.vault / path
        if not target.is_file():
            self._error(404, 40400, "File not found")
            return
        target.unlink()
        self._send(204, b"", None)

    def _vault_path(self) -> str | None:
        """The vault-relative path, after checking the key; None when already answered."""
        if self.path == "/":
            return ""
        self.seen_authorization.append(self.headers.get("Authorization", ""))
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self._error(401, 40101, "Authorization required.")
            return None
        return unquote(urlsplit(self.path).path).removeprefix("/vault/").rstrip("/")

    def _error(self, status: int, code: int, message: str) -> None:
        self._json(status, {"errorCode": code, "message": message})

    def _json(self, status: int, body: object) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str | None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def obsidian(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, list[str]]]:
    folder = tmp_path_factory.mktemp("obsidian")
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=obsidian-local-rest-api",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    vault = folder / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / ".obsidian" / "workspace.md").write_text("internal\n")
    seen: list[str] = []
    handler = type(
        "Handler", (ObsidianRestApiStandIn,), {"vault": vault, "seen_authorization": seen}
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", vault, seen
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def file_server(
    module_server: StartServer, obsidian: tuple[str, Path, list[str]], tmp_path_factory
) -> Server:
    url, _, _ = obsidian
    return module_server(
        "file-service",
        {
            "OBSIDIAN_API_URL": url,
            "OBSIDIAN_API_KEY": API_KEY,
            "VAULT_PATH": str(tmp_path_factory.mktemp("unused-vault")),
        },
    )


@pytest.fixture
def api(file_server: Server) -> Iterator[httpx.Client]:
    with file_server.client() as client:
        yield client


def test_notes_go_through_the_plugin(
    api: httpx.Client, obsidian: tuple[str, Path, list[str]]
) -> None:
    _, vault, seen = obsidian
    created = api.post(
        "/files", json={"path": "daily/today", "content": "# Today\n", "frontmatter": {"mood": 1}}
    )
    assert created.status_code == 201, created.text
    assert (vault / "daily" / "today.md").read_text() == "---\nmood: 1\n---\n# Today\n"
    assert created.json()["content"] == "# Today\n"
    assert created.json()["frontmatter"] == {"mood": 1}
    assert set(seen) == {f"Bearer {API_KEY}"}

    patched = api.patch("/files/daily/today.md", json={"frontmatter": {"done": True}}).json()
    assert patched["frontmatter"] == {"mood": 1, "done": True}
    assert api.put("/files/daily/today.md", json={"content": "new"}).json()["content"] == "new"
    again = api.post("/files", json={"path": "daily/today"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "NOTE_EXISTS"

    listed = api.get("/files").json()["items"]
    assert [n["path"] for n in listed] == ["daily/today.md"]

    assert api.delete("/files/daily/today.md", params={"confirm": "true"}).status_code == 204
    assert not (vault / "daily" / "today.md").exists()
    missing = api.get("/files/daily/today.md")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOTE_NOT_FOUND"


def test_ready_reports_the_plugin(api: httpx.Client) -> None:
    ready = api.get("/ready").json()
    assert ready["checks"]["files"]["ok"] is True
    assert "Obsidian Local REST API" in ready["checks"]["files"]["detail"]


def test_wrong_key_is_a_clear_backend_error(
    server: StartServer, obsidian: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    url, _, _ = obsidian
    started = server(
        "file-service",
        {"OBSIDIAN_API_URL": url, "OBSIDIAN_API_KEY": "wrong", "VAULT_PATH": str(tmp_path)},
    )
    with started.client() as api:
        answer = api.get("/files/anything.md")
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == "BACKEND_FAILED"
        assert "OBSIDIAN_API_KEY" in answer.json()["error"]["message"]
        assert api.get("/ready").status_code == 503


def test_the_self_signed_certificate_is_not_trusted_elsewhere(
    obsidian: tuple[str, Path, list[str]],
) -> None:
    url, _, _ = obsidian
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/")
