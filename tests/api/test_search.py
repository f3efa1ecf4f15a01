"""Search over the shadow cache: `/search`, `/notes/...`, `/graph/stats`, `/mcp/search_notes`.

The cache is filled by `weavenn vault index` from a small real vault, on SQLite and on
PostgreSQL. Every behaviour is checked at each way in: the file service itself, the monolith,
the gateway in front of the file service, and the monolith on Kubernetes calling the file
service remotely (its own database unreachable, so it cannot answer from it).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import Server, StartServer, free_port
from tests.api.test_files import raw_request
from tests.support import WEAVENN_ENV_VARS

pytestmark = pytest.mark.xdist_group("api-search")

NOTES = {
    # The term only in the title (frontmatter), not in the body.
    "projects/Alpha.md": (
        "---\ntitle: Zeppelin Alpha\ntags: [project/alpha]\naliases: [Airship]\n---\n"
        "The first airship project. See [[Beta]].\n## Plan\nBuild the hangar.\n"
    ),
    # The term once, in a longer body.
    "notes/Beta.md": (
        "---\ntags: [draft]\n---\n# Beta\nA long note about airships, hangars and the weather "
        "over the field in spring; a zeppelin passed once. [[Alpha]] and [[Alpha#Plan|the plan]].\n"
    ),
    "notes/Gamma.md": (
        "---\ntags: [project]\n---\n# Gamma\nGround crew. [[projects/Alpha]] [[Missing note]]\n"
    ),
    # Named like the endpoint `/notes/orphans`.
    "orphans.md": "# Orphans\nNothing links here and this links nowhere.\n",
    "lonely/Delta.md": "# Delta\nNobody links here either.\n",
}
ALPHA = "projects/Alpha.md"

ENTRIES = ("file-service", "monolith", "gateway", "monolith on kubernetes")
MONOLITHS = ("monolith", "monolith on kubernetes")
# Each server takes every request of the module; the rate limit has its own tests.
UNLIMITED = {"RATE_LIMIT_PER_MINUTE": "100000"}


def weavenn_json(weavenn_bin: Path, env: dict[str, str], *args: str) -> Any:
    """Run the installed command with `--json` and return what it printed."""
    clean = {k: v for k, v in os.environ.items() if k not in WEAVENN_ENV_VARS}
    result = subprocess.run(
        [str(weavenn_bin), *args, "--json"],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def index_vault(weavenn_bin: Path, database_url: str, vault: Path) -> None:
    """Fill the shadow cache of `database_url` from `vault` with `weavenn vault index`."""
    env = {"DATABASE_URL": database_url, "VAULT_PATH": str(vault)}
    summary = weavenn_json(weavenn_bin, env, "vault", "index")
    assert summary["scanned"] > 0, summary


@pytest.fixture(scope="module")
def search_vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search")
    (root / "secret.md").write_text("outside the vault\n")
    vault = root / "vault"
    for relative, text in NOTES.items():
        (vault / relative).parent.mkdir(parents=True, exist_ok=True)
        (vault / relative).write_text(text)
    return vault


@pytest.fixture(scope="module")
def cache_env(weavenn_bin: Path, module_db_url: str, search_vault: Path) -> dict[str, str]:
    """The environment of a process that reads the indexed cache (SQLite or PostgreSQL)."""
    index_vault(weavenn_bin, module_db_url, search_vault)
    return {"DATABASE_URL": module_db_url, "VAULT_PATH": str(search_vault)} | UNLIMITED


@pytest.fixture(scope="module")
def cli(weavenn_bin: Path, cache_env: dict[str, str]) -> dict[str, Any]:
    """What `weavenn vault ... --json` prints for the same cache."""
    return {
        "note": weavenn_json(weavenn_bin, cache_env, "vault", "note", ALPHA),
        "search": weavenn_json(weavenn_bin, cache_env, "vault", "search", "zeppelin"),
        "stats": weavenn_json(weavenn_bin, cache_env, "vault", "stats"),
        "orphans": weavenn_json(weavenn_bin, cache_env, "vault", "orphans"),
    }


@pytest.fixture(scope="module")
def entries(
    module_server: StartServer, cache_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Server]:
    file_service = module_server("file-service", cache_env)
    remote = UNLIMITED | {
        "DEPLOYMENT_MODE": "kubernetes",
        "FILE_SERVICE_URL": file_service.url,
        "VAULT_PATH": str(tmp_path_factory.mktemp("not-used")),
        "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/not-used",
    }
    monolith = module_server("all", cache_env)
    # Requests without a user stay with the monolith behind the gateway; users go to the
    # file service (tests/rollout covers who goes where).
    gateway = UNLIMITED | {
        "FILE_SERVICE_URL": file_service.url,
        "MONOLITH_URL": monolith.url,
        "FILE_SERVICE_ROLLOUT_PERCENTAGE": "100",
    }
    return {
        "file-service": file_service,
        "monolith": monolith,
        "gateway": module_server("gateway", gateway),
        "monolith on kubernetes": module_server("all", remote),
    }


@pytest.fixture(params=ENTRIES)
def entry_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def entry(entry_name: str, entries: dict[str, Server]) -> Server:
    return entries[entry_name]


@pytest.fixture
def api(entry: Server) -> Iterator[httpx.Client]:
    with entry.client() as client:
        yield client


@pytest.fixture(params=MONOLITHS)
def monolith_api(
    request: pytest.FixtureRequest, entries: dict[str, Server]
) -> Iterator[httpx.Client]:
    with entries[request.param].client() as client:
        yield client


def paths(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [hit["path"] for hit in answer.json()["items"]]


def error_code(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]["code"]


def test_a_title_match_ranks_above_a_passing_mention(
    api: httpx.Client, cli: dict[str, Any]
) -> None:
    answer = api.get("/search", params={"q": "zeppelin"})
    assert paths(answer) == [ALPHA, "notes/Beta.md"]
    hits = answer.json()["items"]
    assert hits[0]["title"] == "Zeppelin Alpha"
    assert hits[0]["score"] > hits[1]["score"] > 0
    assert "**zeppelin**" in hits[1]["snippet"]
    assert hits == cli["search"]


def test_tag_filter_takes_nested_tags(api: httpx.Client) -> None:
    # Without words: the tagged notes by title.
    assert paths(api.get("/search", params={"tag": "project"})) == ["notes/Gamma.md", ALPHA]
    assert paths(api.get("/search", params={"tag": "#draft"})) == ["notes/Beta.md"]
    both = api.get("/search", params={"q": "zeppelin", "tag": "project"})
    assert paths(both) == [ALPHA]
    assert paths(api.get("/search", params={"q": "zeppelin", "tag": "nothing"})) == []


def test_limit_is_bounded(api: httpx.Client) -> None:
    assert paths(api.get("/search", params={"q": "zeppelin", "limit": 1})) == [ALPHA]
    assert api.get("/search", params={"q": "zeppelin", "limit": 100}).status_code == 200
    for limit in (0, 101, -1):
        answer = api.get("/search", params={"q": "zeppelin", "limit": limit})
        assert error_code(answer) == (422, "VALIDATION_ERROR"), limit
    assert error_code(api.get("/notes/orphans", params={"limit": 0})) == (422, "VALIDATION_ERROR")
    assert error_code(api.get("/search", params={"q": "x" * 501})) == (422, "VALIDATION_ERROR")


def test_a_query_without_words_is_refused(api: httpx.Client) -> None:
    for params in ({}, {"q": "  "}, {"q": "!!! ??"}, {"q": "a\x00b"}, {"tag": "#"}):
        answer = api.get("/search", params=params)
        assert error_code(answer) == (400, "INVALID_QUERY"), params
        assert answer.json()["error"]["message"], params


def test_note_metadata_is_what_vault_note_shows(api: httpx.Client, cli: dict[str, Any]) -> None:
    note = api.get("/notes/projects/Alpha")
    assert note.status_code == 200, note.text
    assert note.json() == cli["note"]
    assert api.get("/notes/projects/Alpha.md").json() == cli["note"]
    details = note.json()
    assert (details["title"], details["tags"], details["aliases"]) == (
        "Zeppelin Alpha",
        ["project/alpha"],
        ["Airship"],
    )
    assert [(link["target"], link["resolved_path"]) for link in details["links"]] == [
        ("Beta", "notes/Beta.md")
    ]
    assert [heading["text"] for heading in details["headings"]] == ["Plan"]


def test_backlinks_count_the_links_from_each_note(api: httpx.Client) -> None:
    answer = api.get("/notes/projects/Alpha.md/backlinks")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "path": ALPHA,
        "items": [
            {"path": "notes/Beta.md", "title": "Beta", "links": 2},
            {"path": "notes/Gamma.md", "title": "Gamma", "links": 1},
        ],
    }
    assert api.get("/notes/lonely/Delta/backlinks").json() == {
        "path": "lonely/Delta.md",
        "items": [],
    }


def test_graph_stats_are_what_vault_stats_shows(api: httpx.Client, cli: dict[str, Any]) -> None:
    stats = api.get("/graph/stats").json()
    assert stats == {"notes": 5, "tags": 3, "links": 5, "unresolved": 1, "orphans": 2}
    assert stats == cli["stats"]


def test_orphans_are_not_taken_for_a_note_path(api: httpx.Client, cli: dict[str, Any]) -> None:
    orphans = api.get("/notes/orphans").json()
    assert orphans == {"items": ["lonely/Delta.md", "orphans.md"], "truncated": False}
    assert orphans["items"] == cli["orphans"]
    assert api.get("/notes/orphans", params={"limit": 1}).json() == {
        "items": ["lonely/Delta.md"],
        "truncated": True,
    }
    # The note named like the endpoint is reachable by its full path.
    assert api.get("/notes/orphans.md").json()["title"] == "Orphans"


def test_unknown_note_is_not_found(api: httpx.Client) -> None:
    for path in ("/notes/nowhere", "/notes/projects/Nowhere.md/backlinks"):
        answer = api.get(path)
        assert error_code(answer) == (404, "NOTE_NOT_FOUND"), path
        assert "weavenn vault index" in answer.json()["error"]["message"]


TRAVERSALS = [
    ("/notes/../secret.md", "INVALID_PATH"),
    ("/notes/a/../../secret.md", "INVALID_PATH"),
    ("/notes/%2e%2e/secret.md", "INVALID_PATH"),
    ("/notes/%2E%2E%2Fsecret.md", "INVALID_PATH"),
    ("/notes/%252e%252e%252fsecret.md", "INVALID_PATH"),
    ("/notes/..%5csecret.md", "INVALID_PATH"),
    ("/notes/secret%00.md", "INVALID_PATH"),
    ("/notes/%2Fetc%2Fpasswd", "INVALID_PATH"),
    ("/notes/C:/Windows/win.ini", "INVALID_PATH"),
    ("/notes/%2e%2e/secret/backlinks", "INVALID_PATH"),
    ("/notes/.obsidian/app.json", "PROTECTED_PATH"),
    ("/notes/_system/rules/backlinks", "PROTECTED_PATH"),
    ("/notes/" + "a" * 498, "INVALID_PATH"),
]


def test_paths_outside_the_vault_or_protected_are_refused(entry: Server) -> None:
    # The gateway forwards the path as sent (dot segments included), so the service refuses it.
    for target, code in TRAVERSALS:
        answer = raw_request(entry, "GET", target)
        assert answer["status"] in (400, 403), (target, answer)
        assert answer["body"]["error"]["code"] == code, (target, answer)


LEGACY_BODIES: list[dict[str, Any]] = [
    {"query": "zeppelin"},
    {"query": "zeppelin", "limit": 1},
    {"tag": "project"},
    {"query": "airship OR hangar", "tag": "project", "limit": 5},
    {"query": "!!!"},
    {},
]


def test_legacy_search_notes_answers_as_search(monolith_api: httpx.Client) -> None:
    for body in LEGACY_BODIES:
        params = {"q" if key == "query" else key: value for key, value in body.items()}
        legacy = monolith_api.post("/mcp/search_notes", json=body)
        current = monolith_api.get("/search", params=params)
        assert legacy.status_code == current.status_code, body
        if current.status_code == 200:
            assert legacy.json() == current.json(), body
        else:
            assert legacy.json()["error"]["code"] == current.json()["error"]["code"], body
            assert legacy.json()["error"]["message"] == current.json()["error"]["message"], body


def test_legacy_search_notes_bounds_its_limit(monolith_api: httpx.Client) -> None:
    answer = monolith_api.post("/mcp/search_notes", json={"query": "x", "limit": 101})
    assert error_code(answer) == (422, "VALIDATION_ERROR")


def test_openapi_describes_the_search_operations(entries: dict[str, Server]) -> None:
    for name in ("file-service", "monolith"):
        with entries[name].client() as api:
            document = api.get("/openapi.json").json()
        operations = document["paths"]
        for path, model in (
            ("/search", "SearchResults"),
            ("/notes/{path}", "NoteDetails"),
            ("/notes/{path}/backlinks", "Backlinks"),
            ("/notes/orphans", "Orphans"),
            ("/graph/stats", "VaultStats"),
        ):
            schema = operations[path]["get"]["responses"]["200"]["content"]["application/json"]
            assert schema["schema"]["$ref"].endswith("/" + model), (name, path)
        assert ("/mcp/search_notes" in operations) is (name == "monolith")
        assert "NoteDetails" in document["components"]["schemas"]


def test_file_service_is_ready_with_its_cache(entries: dict[str, Server]) -> None:
    with entries["file-service"].client() as api:
        ready = api.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"]["ok"] is True


def test_file_service_is_not_ready_on_a_database_without_the_cache(
    server: StartServer, tmp_path: Path
) -> None:
    unmigrated = server(
        "file-service",
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "VAULT_PATH": str(tmp_path)},
    )
    with unmigrated.client() as api:
        answer = api.get("/ready")
        assert answer.status_code == 503
        assert "weavenn migrate db" in answer.json()["checks"]["database"]["detail"]
