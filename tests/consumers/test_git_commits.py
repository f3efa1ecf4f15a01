"""The vault repository as git-auto-commit drives it, without a bus: what one commit records.

Real repositories in the test's folder; these are the message shapes and the git semantics
(renames, deletions, nothing changed, someone else's staged work) of `commit_requested`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.consumers.gitvault import commit_count, files_in, git, init_vault, message, write
from weavenn_cli.runtime.errors import ConfigError, WeavennError
from weavenn_cli.runtime.git.autocommit import (
    Requested,
    VaultRepository,
    check_push_target,
    identity_environment,
)
from weavenn_cli.runtime.git.changes import MESSAGE_FILE_LIMIT, Change, commit_message

BOT = identity_environment("Weave-NN Bot", "bot@weave-nn.local")


def open_vault(path: Path, **options: object) -> VaultRepository:
    return VaultRepository.open(path, env=BOT, auto_init=False, **options)  # type: ignore[arg-type]


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    return init_vault(tmp_path / "vault", {"ideas/graph.md": "# Graph\n", "old.md": "old\n"})


def test_one_updated_note_is_named_in_the_subject_by_the_bot(vault: Path) -> None:
    write(vault, "ideas/graph.md", "# Graph\n\nedges\n")
    result = open_vault(vault).commit_requested([Requested("ideas/graph.md")], {})
    assert result is not None
    assert message(vault) == "Updated ideas/graph.md\n"
    author = git(vault, "log", "-1", "--format=%an <%ae>|%cn <%ce>").strip()
    assert author == "Weave-NN Bot <bot@weave-nn.local>|Weave-NN Bot <bot@weave-nn.local>"


@pytest.mark.parametrize(
    ("change", "subject"),
    [
        ("create", "Created new.md"),
        ("delete", "Deleted old.md"),
        ("rename", "Renamed old.md -> archive/old.md"),
    ],
)
def test_one_change_of_each_kind(vault: Path, change: str, subject: str) -> None:
    if change == "create":
        write(vault, "new.md", "new\n")
        requested = [Requested("new.md")]
    elif change == "delete":
        (vault / "old.md").unlink()
        requested = [Requested("old.md")]
    else:
        write(vault, "archive/old.md", "old\n")
        (vault / "old.md").unlink()
        requested = [Requested("archive/old.md", old_path="old.md")]
    open_vault(vault).commit_requested(requested, {})
    assert message(vault).splitlines()[0] == subject


def test_several_changes_are_counted_in_the_subject_and_listed_in_the_body(vault: Path) -> None:
    write(vault, "a.md", "a\n")
    write(vault, "b.md", "b\n")
    write(vault, "ideas/graph.md", "# Graph v2\n")
    write(vault, "archive/old.md", "old\n")
    (vault / "old.md").unlink()
    requested = [
        Requested("a.md"),
        Requested("b.md"),
        Requested("ideas/graph.md"),
        Requested("archive/old.md", old_path="old.md"),
    ]
    open_vault(vault).commit_requested(requested, {"ideas/graph.md": "auto-tag,auto-link"})
    assert message(vault) == (
        "vault: 2 created, 1 updated, 1 renamed\n\n"
        "created a.md\ncreated b.md\nupdated ideas/graph.md\nrenamed old.md -> archive/old.md\n\n"
        "Weave-NN-Agent: auto-tag,auto-link ideas/graph.md\n"
    )
    # git itself reads the trailer
    trailers = git(vault, "log", "-1", "--format=%(trailers:key=Weave-NN-Agent,valueonly)")
    assert trailers.strip() == "auto-tag,auto-link ideas/graph.md"


def test_the_file_list_stops_at_its_limit_and_says_how_many_more() -> None:
    changes = [Change("created", f"n/{i}.md") for i in range(MESSAGE_FILE_LIMIT + 7)]
    text = commit_message(changes, {})
    assert text.splitlines()[0] == f"vault: {MESSAGE_FILE_LIMIT + 7} created"
    assert text.count("\ncreated n/") == MESSAGE_FILE_LIMIT
    assert text.rstrip().endswith("... and 7 more")


def test_a_deletion_and_a_rename_are_recorded_as_such(vault: Path) -> None:
    (vault / "ideas/graph.md").unlink()
    (vault / "old.md").rename(vault / "renamed.md")
    requested = [Requested("ideas/graph.md"), Requested("renamed.md", old_path="old.md")]
    open_vault(vault).commit_requested(requested, {})
    assert sorted(files_in(vault)) == ["D\tideas/graph.md", "R100\told.md\trenamed.md"]
    assert message(vault).splitlines()[0] == "vault: 1 renamed, 1 deleted"
    assert git(vault, "status", "--porcelain") == ""


def test_paths_nothing_changed_in_make_no_commit(vault: Path) -> None:
    before = commit_count(vault)
    result = open_vault(vault).commit_requested(
        [Requested("ideas/graph.md"), Requested("never-existed.md")], {}
    )
    assert result is None
    assert commit_count(vault) == before


def test_only_named_paths_are_committed_and_what_a_person_staged_stays_staged(
    vault: Path,
) -> None:
    write(vault, "mine.md", "work in progress\n")
    git(vault, "add", "mine.md")
    write(vault, "unnamed.md", "not in any event\n")
    write(vault, "[draft] what?.md", "glob characters in the name\n")
    open_vault(vault).commit_requested([Requested("[draft] what?.md")], {})
    assert files_in(vault) == ["A\t[draft] what?.md"]
    assert git(vault, "status", "--porcelain").splitlines() == ["A  mine.md", "?? unnamed.md"]


def test_a_vault_inside_a_larger_repository_commits_its_own_paths(tmp_path: Path) -> None:
    top = init_vault(tmp_path / "docs", {"README.md": "docs\n", "vault/a.md": "a\n"})
    write(top, "vault/a.md", "a, edited\n")
    repository = open_vault(top / "vault")
    repository.commit_requested([Requested("a.md")], {})
    assert message(top) == "Updated a.md\n"
    assert files_in(top) == ["M\tvault/a.md"]


def test_a_folder_that_is_not_a_repository_is_initialised_or_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(WeavennError, match=r"not a git repository.*GIT_AUTO_INIT"):
        open_vault(plain)
    assert not (plain / ".git").exists()
    repository = VaultRepository.open(plain, env=BOT, auto_init=True, branch="notes")
    write(plain, "first.md", "first\n")
    repository.commit_requested([Requested("first.md")], {})
    assert git(plain, "branch", "--show-current").strip() == "notes"
    assert message(plain) == "Created first.md\n"


def test_a_missing_vault_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WeavennError, match="does not exist: set VAULT_PATH"):
        open_vault(tmp_path / "nowhere")


def test_a_rebase_left_unfinished_by_a_killed_process_is_aborted_on_open(vault: Path) -> None:
    head = git(vault, "rev-parse", "HEAD").strip()
    git(vault, "checkout", "--quiet", "-b", "theirs")
    write(vault, "old.md", "theirs\n")
    git(vault, "commit", "--quiet", "-am", "theirs")
    git(vault, "checkout", "--quiet", "main")
    write(vault, "old.md", "ours\n")
    git(vault, "commit", "--quiet", "-am", "ours")
    ours = git(vault, "rev-parse", "HEAD").strip()
    stopped = subprocess.run(
        ["git", "-C", str(vault), "rebase", "theirs"], capture_output=True, check=False
    )
    assert stopped.returncode != 0 and (vault / ".git" / "rebase-merge").is_dir()
    open_vault(vault)
    assert not (vault / ".git" / "rebase-merge").exists()
    assert git(vault, "rev-parse", "HEAD").strip() == ours != head
    assert (vault / "old.md").read_text() == "ours\n"


@pytest.mark.parametrize(
    ("remote", "branch", "named"),
    [("--receive-pack=evil", None, "GIT_REMOTE"), ("origin", "main..x", "GIT_BRANCH")],
)
def test_a_remote_or_branch_git_would_misread_is_refused(
    remote: str, branch: str | None, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        check_push_target(remote, branch)
    check_push_target("origin", "main")
    check_push_target("file:///srv/vault.git", None)
