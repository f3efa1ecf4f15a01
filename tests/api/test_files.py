"""The file service alone, on a vault folder: notes, limits, and every way out of the vault."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.api.conftest import Server, StartServer

pytestmark = pytest.mark.xdist_group("api-files")


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files")
    (root / "secret.md").write_text("outside the vault\n")
    vault = root / "vault"
    vault.mkdir()
    (vault / ".obsidian").mkdir()
    (vault / ".obsidian" / "app.json").write_text("{}")
    return vault


@pytest.fixture(scope="module")
def file_server(module_server: StartServer, vault: Path) -> Server:
    return module_server("file-service", {"VAULT_PATH": str(vault)})


@pytest.fixture
def api(file_server: Server) -> Iterator[httpx.Client]:
    with file_server.client() as client:
        yield client


def raw_request(server: Server, method: str, target: str, body: bytes | None = None) -> dict:
    """Send the request line exactly as written: no client-side normalising of `..` or `%`."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        return {"status": response.status, "body": json.loads(response.read() or b"null")}
    finally:
        connection.close()


def test_note_lifecycle(api: httpx.Client, vault: Path) -> None:
    created = api.post(
        "/files",
        json={"path": "projects/alpha", "content": "# Alpha\n", "frontmatter": {"tags": ["a"]}},
    )
    assert created.status_code == 201, created.text
    assert created.json()["path"] == "projects/alpha.md"
    assert created.headers["location"] == "/files/projects/alpha.md"
    on_disk = (vault / "projects" / "alpha.md").read_text()
    assert on_disk == "---\ntags:\n- a\n---\n# Alpha\n"

    note = api.get("/files/projects/alpha").json()
    assert note["content"] == "# Alpha\n" and note["frontmatter"] == {"tags": ["a"]}

    replaced = api.put("/files/projects/alpha.md", json={"content": "new\n", "frontmatter": {}})
    assert replaced.json()["content"] == "new\n" and replaced.json()["frontmatter"] == {}
    assert (vault / "projects" / "alpha.md").read_text() == "new\n"

    patched = api.patch(
        "/files/projects/alpha.md", json={"frontmatter": {"status": "draft", "meta": {"a": 1}}}
    )
    assert patched.json()["frontmatter"] == {"status": "draft", "meta": {"a": 1}}
    merged = api.patch(
        "/files/projects/alpha.md",
        json={"frontmatter": {"status": None, "meta": {"b": 2}}, "content": "body\n"},
    ).json()
    assert merged["frontmatter"] == {"meta": {"a": 1, "b": 2}} and merged["content"] == "body\n"
    front = yaml.safe_load((vault / "projects" / "alpha.md").read_text().split("---")[1])
    assert front == {"meta": {"a": 1, "b": 2}}

    refused = api.delete("/files/projects/alpha.md")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "CONFIRMATION_REQUIRED"
    assert (vault / "projects" / "alpha.md").exists()
    assert api.delete("/files/projects/alpha.md", params={"confirm": "true"}).status_code == 204
    assert not (vault / "projects" / "alpha.md").exists()
    gone = api.get("/files/projects/alpha.md")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "NOTE_NOT_FOUND"
    assert not list(vault.rglob(".weavenn-*")), "temporary files left behind"


def test_creating_an_existing_note_is_a_conflict(api: httpx.Client) -> None:
    assert api.post("/files", json={"path": "dup.md", "content": "one"}).status_code == 201
    again = api.post("/files", json={"path": "dup", "content": "two"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "NOTE_EXISTS"
    assert api.get("/files/dup.md").json()["content"] == "one"


def test_changing_a_missing_note_is_not_found(api: httpx.Client) -> None:
    for answer in (
        api.put("/files/nowhere.md", json={"content": "x"}),
        api.patch("/files/nowhere.md", json={"content": "x"}),
        api.delete("/files/nowhere.md", params={"confirm": "true"}),
    ):
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "NOTE_NOT_FOUND"


def test_list_matches_the_pattern_and_stops_at_the_limit(api: httpx.Client) -> None:
    for name in ("list/a", "list/b", "list/c", "list/sub/d"):
        api.post("/files", json={"path": name, "content": name})
    everything = api.get("/files", params={"pattern": "list/*"}).json()
    assert [n["path"] for n in everything["items"]] == [
        "list/a.md",
        "list/b.md",
        "list/c.md",
        "list/sub/d.md",
    ]
    assert everything["truncated"] is False
    first_two = api.get("/files", params={"pattern": "list/*", "limit": 2}).json()
    assert [n["path"] for n in first_two["items"]] == ["list/a.md", "list/b.md"]
    assert first_two["truncated"] is True
    assert all(not n["path"].startswith(".obsidian") for n in api.get("/files").json()["items"])
    for limit in (0, 1001):
        assert api.get("/files", params={"limit": limit}).status_code == 422


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("/files/../secret.md", "INVALID_PATH"),
        ("/files/a/../../secret.md", "INVALID_PATH"),
        ("/files/%2e%2e/secret.md", "INVALID_PATH"),
        ("/files/%2E%2E%2Fsecret.md", "INVALID_PATH"),
        ("/files/%252e%252e%252fsecret.md", "INVALID_PATH"),
        ("/files/..%5csecret.md", "INVALID_PATH"),
        ("/files/a%5c..%5c..%5csecret.md", "INVALID_PATH"),
        ("/files/secret%00.md", "INVALID_PATH"),
        ("/files//etc/passwd", "INVALID_PATH"),
        ("/files/%2Fetc%2Fpasswd", "INVALID_PATH"),
        ("/files/C:/Windows/win.ini", "INVALID_PATH"),
        ("/files/.obsidian/app.json", "PROTECTED_PATH"),
        ("/files/%2eobsidian/app.json", "PROTECTED_PATH"),
        ("/files/.git/config", "PROTECTED_PATH"),
        ("/files/notes/.GIT/config", "PROTECTED_PATH"),
        ("/files/_system/rules.md", "PROTECTED_PATH"),
        ("/files/" + "a" * 498, "INVALID_PATH"),
    ],
)
def test_paths_outside_the_vault_or_protected_are_refused(
    file_server: Server, target: str, code: str
) -> None:
    for method in ("GET", "PUT", "DELETE"):
        body = b'{"content": "pwned"}' if method == "PUT" else None
        suffix = "?confirm=true" if method == "DELETE" else ""
        answer = raw_request(file_server, method, target + suffix, body)
        assert answer["status"] in (400, 403), (method, answer)
        assert answer["body"]["error"]["code"] == code, (method, answer)


@pytest.mark.parametrize("path", ["../secret", "..\\secret", "/tmp/x", "a\x00b", ".git/hooks/x"])
def test_creating_outside_the_vault_is_refused(api: httpx.Client, vault: Path, path: str) -> None:
    answer = api.post("/files", json={"path": path, "content": "pwned"})
    assert answer.status_code in (400, 403)
    assert answer.json()["error"]["code"] in ("INVALID_PATH", "PROTECTED_PATH")
    assert (vault.parent / "secret.md").read_text() == "outside the vault\n"


def test_symlink_out_of_the_vault_is_refused(api: httpx.Client, vault: Path) -> None:
    (vault / "escape").symlink_to(vault.parent, target_is_directory=True)
    answer = api.get("/files/escape/secret.md")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "INVALID_PATH"


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"level": value}
    return value


def test_frontmatter_limits(api: httpx.Client) -> None:
    at_limit = {f"k{i}": i for i in range(99)} | {"deep": nested(4)}
    assert api.post("/files", json={"path": "fm/ok", "frontmatter": at_limit}).status_code == 201
    for name, front in (
        ("too-many", {f"k{i}": i for i in range(101)}),
        ("too-deep", nested(6)),
        ("list-too-deep", {"a": [[[[[1]]]]]}),
    ):
        answer = api.post("/files", json={"path": f"fm/{name}", "frontmatter": front})
        assert answer.status_code == 422, name
        assert answer.json()["error"]["code"] == "INVALID_FRONTMATTER", name
    patched = api.patch("/files/fm/ok.md", json={"frontmatter": {"extra1": 1, "extra2": 2}})
    assert patched.status_code == 422
    assert patched.json()["error"]["code"] == "INVALID_FRONTMATTER"
