"""A remote URL carrying a token: git fails against it, and the token shows nowhere.

The remote is a local bare repository reached through a file:// URL with a fake token in its
userinfo, and a pre-receive hook that refuses every push and repeats the URL (as a server's
`remote:` lines may).
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from tests.bus.harness import Bus, wait_until
from tests.consumers.gitvault import commit_count, event, git, init_vault, write
from tests.consumers.test_git_auto_commit import consumer
from weavenn_cli.runtime.redaction import redact_credentials

TOKEN = "ghp_FAKE0TOKEN0for0tests0only"


def refusing_remote(tmp_path: Path) -> tuple[Path, str]:
    """A bare repository that refuses pushes, and its URL with the token in it."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    url = f"file://weave:{TOKEN}@localhost{bare}"
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho 'refused for {url}' >&2\nexit 1\n")
    hook.chmod(0o755)
    return bare, url


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("push to https://user:tok@github.com/a/b.git failed", "https://***@github.com/a/b.git"),
        ("'https://tok@host:8443/x.git/'", "'https://***@host:8443/x.git/'"),
        ("file://u:p@ss@localhost/tmp/r.git", "file://***@localhost/tmp/r.git"),
        ("git@github.com:a/b.git stays", "git@github.com:a/b.git stays"),
        ("http://host/path@v1 stays", "http://host/path@v1 stays"),
    ],
)
def test_redaction_takes_out_the_userinfo_of_urls(text: str, shown: str) -> None:
    assert shown in redact_credentials(text)
    assert "tok" not in redact_credentials(text).replace("stays", "")


def test_a_failed_push_logs_no_token(
    embedded_bus: Bus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, url = refusing_remote(tmp_path)
    vault = init_vault(tmp_path / "vault", {"note.md": "# Note\n"})
    write(vault, "note.md", "# Note\n\nedited\n")
    caplog.set_level(logging.INFO)
    with embedded_bus.running(consumer(vault, git_remote_push=True, git_remote=url)):
        embedded_bus.publish([event(vault, "note.md", seq=1)])
        wait_until(lambda: commit_count(vault) == 2, what="the commit")
        wait_until(lambda: "not pushed yet" in caplog.text, what="the failed push logged")
    assert TOKEN not in caplog.text
    assert "file://***@localhost" in caplog.text


def test_commands_print_no_token(run_weavenn, tmp_path: Path) -> None:
    vault = init_vault(tmp_path / "vault", {"note.md": "# Note\n"})
    # GIT_REMOTE that git would misread (a space): refused at start, the URL quoted.
    env = {
        "VAULT_PATH": str(vault),
        "GIT_REMOTE_PUSH": "true",
        "GIT_REMOTE": f"https://{TOKEN}@example.invalid/vault notes.git",
    }
    refused = run_weavenn("consume", "git-auto-commit", env=env, timeout=60)
    assert refused.returncode == 1
    assert "GIT_REMOTE='https://***@example.invalid/vault notes.git'" in refused.stderr
    shown = run_weavenn("config", "show", env={"GIT_REMOTE": f"https://{TOKEN}@github.com/a/b"})
    assert shown.returncode == 0, shown.stderr
    assert "https://***@github.com/a/b" in shown.stdout
    for output in (refused.stdout, refused.stderr, shown.stdout, shown.stderr):
        assert TOKEN not in output


def test_git_itself_is_given_the_token(tmp_path: Path) -> None:
    """The fixture is what it claims: the push reaches the hook, which repeats the token."""
    _, url = refusing_remote(tmp_path)
    vault = init_vault(tmp_path / "vault", {"note.md": "# Note\n"})
    push = subprocess.run(
        ["git", "-C", str(vault), "push", url, "HEAD:refs/heads/main"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert push.returncode != 0
    assert TOKEN in push.stderr  # relayed from the server: what our messages must not repeat
