"""The git service alone, on a vault repository with a bare remote."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Server, StartServer, git

pytestmark = pytest.mark.xdist_group("api-git")


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bare = tmp_path_factory.mktemp("remote") / "vault.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    return bare


@pytest.fixture(scope="module")
def repo(module_vault: Path, remote: Path) -> Path:
    (module_vault / "start.md").write_text("start\n")
    git(module_vault, "add", "-A")
    git(module_vault, "commit", "-q", "-m", "start")
    git(module_vault, "remote", "add", "origin", str(remote))
    git(module_vault, "push", "-q", "-u", "origin", "main")
    return module_vault


@pytest.fixture(scope="module")
def git_server(module_server: StartServer, repo: Path) -> Server:
    return module_server("git-service", {"VAULT_PATH": str(repo)})


@pytest.fixture
def api(git_server: Server) -> Iterator[httpx.Client]:
    with git_server.client() as client:
        yield client


def test_status_commit_log_and_diff(api: httpx.Client, repo: Path) -> None:
    (repo / "idea.md").write_text("an idea\n")
    (repo / "other.md").write_text("not this one\n")
    status = api.get("/git/status").json()
    assert status["branch"] == "main" and status["upstream"] == "origin/main"
    assert {f["path"] for f in status["files"]} >= {"idea.md", "other.md"}
    assert status["clean"] is False

    committed = api.post("/git/commit", json={"message": "Add idea", "files": ["idea.md"]})
    assert committed.status_code == 201, committed.text
    sha = committed.json()["commit"]
    assert committed.json()["files"] == ["idea.md"]
    assert git(repo, "log", "-1", "--format=%H %s").strip() == f"{sha} Add idea"
    assert git(repo, "status", "--porcelain", "other.md").startswith("??")

    log = api.get("/git/log", params={"path": "idea.md", "limit": 5}).json()["items"]
    assert [entry["commit"] for entry in log] == [sha]
    assert log[0]["message"] == "Add idea"
    assert "+an idea" in api.get("/git/diff", params={"commit": sha}).json()["diff"]
    (repo / "idea.md").write_text("an idea, refined\n")
    working = api.get("/git/diff", params={"path": "idea.md"}).json()["diff"]
    assert "+an idea, refined" in working and "other.md" not in working
    assert api.get("/git/status").json()["ahead"] == 1


def test_push_and_pull_through_the_remote(api: httpx.Client, repo: Path, tmp_path: Path) -> None:
    (repo / "pushed.md").write_text("pushed\n")
    sha = api.post("/git/commit", json={"message": "Push me", "files": ["pushed.md"]}).json()[
        "commit"
    ]
    pushed = api.post("/git/push")
    assert pushed.status_code == 200, pushed.text
    remote_url = git(repo, "remote", "get-url", "origin").strip()
    assert git(Path(remote_url), "rev-parse", "main").strip() == sha

    elsewhere = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", remote_url, str(elsewhere)], check=True)
    (elsewhere / "from-elsewhere.md").write_text("hello\n")
    git(elsewhere, "add", "-A")
    git(elsewhere, "commit", "-q", "-m", "From elsewhere")
    git(elsewhere, "push", "-q", "origin", "main")

    git(repo, "checkout", "--", ".")  # drop edits left by other tests
    pulled = api.post("/git/pull", json={"remote": "origin", "branch": "main"})
    assert pulled.status_code == 200, pulled.text
    assert (repo / "from-elsewhere.md").read_text() == "hello\n"


def test_nothing_to_commit_is_a_conflict(api: httpx.Client) -> None:
    answer = api.post("/git/commit", json={"message": "nothing", "files": ["start.md"]})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "NOTHING_TO_COMMIT"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"commit": "--output=/tmp/pwned"}, "INVALID_REF"),
        ({"commit": "HEAD;rm -rf /"}, "INVALID_REF"),
        ({"commit": "main..HEAD"}, "INVALID_REF"),
        ({"commit": "deadbeefdeadbeef"}, "COMMIT_NOT_FOUND"),
        ({"path": "../outside"}, "INVALID_PATH"),
        ({"path": ".git/config"}, "PROTECTED_PATH"),
    ],
)
def test_refs_and_paths_are_validated(api: httpx.Client, params: dict, code: str) -> None:
    answer = api.get("/git/diff", params=params)
    assert answer.status_code in (400, 403, 404)
    assert answer.json()["error"]["code"] == code
    assert not Path("/tmp/pwned").exists()


def test_commit_files_and_branches_are_validated(api: httpx.Client) -> None:
    bad_file = api.post("/git/commit", json={"message": "m", "files": ["../../etc/passwd"]})
    assert bad_file.json()["error"]["code"] == "INVALID_PATH"
    bad_branch = api.post("/git/push", json={"branch": "--force"})
    assert bad_branch.json()["error"]["code"] == "INVALID_REF"
    unknown_remote = api.post("/git/pull", json={"remote": "upstream"})
    assert unknown_remote.status_code == 409
    assert unknown_remote.json()["error"]["code"] == "NO_REMOTE"


def test_push_without_a_remote_is_refused(server: StartServer, tmp_path: Path) -> None:
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    git(lonely, "init", "-q", "-b", "main")
    started = server("git-service", {"VAULT_PATH": str(lonely)})
    with started.client() as api:
        assert api.get("/git/log").json() == {"items": []}
        for action in ("/git/push", "/git/pull"):
            answer = api.post(action)
            assert answer.status_code == 409
            assert answer.json()["error"]["code"] == "NO_REMOTE"
        assert api.get("/ready").status_code == 200


def test_a_remote_url_with_a_token_shows_in_no_answer_and_no_log(
    server: StartServer, tmp_path: Path
) -> None:
    token = "ghp_FAKE0TOKEN0for0the0api"
    bare = tmp_path / "refusing.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    url = f"file://weave:{token}@localhost{bare}"
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho 'refused for {url}' >&2\nexit 1\n")
    hook.chmod(0o755)
    vault = tmp_path / "vault"
    vault.mkdir()
    git(vault, "init", "-q", "-b", "main")
    (vault / "note.md").write_text("note\n")
    git(vault, "add", "-A")
    git(vault, "commit", "-q", "-m", "note")
    git(vault, "remote", "add", "origin", url)
    started = server("git-service", {"VAULT_PATH": str(vault)})
    with started.client() as api:
        answers = [
            api.post("/git/push"),
            api.post("/git/pull", json={"remote": "origin", "branch": "nowhere"}),
            api.get("/git/status"),
        ]
    assert [answer.status_code for answer in answers] == [409, 409, 200]
    assert answers[0].json()["error"]["code"] == "GIT_FAILED"
    for answer in answers:
        assert token not in answer.text
    assert token not in started.output()
