"""Real git repositories in the test's folder: a vault, bare remotes, and events about them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from weavenn_cli.runtime.events import VaultFileEvent, derive_message_id
from weavenn_cli.runtime.vault.parser import content_hash

PERSON = ["-c", "user.name=A Person", "-c", "user.email=person@example.org"]


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *PERSON, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def init_vault(path: Path, files: dict[str, str] | None = None) -> Path:
    """A vault repository on branch main, with `files` in a first commit."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    if files:
        for name, text in files.items():
            write(path, name, text)
        git(path, "add", "--all")
        git(path, "commit", "--quiet", "-m", "first notes")
    return path


def write(vault: Path, name: str, text: str) -> Path:
    target = vault / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


def commit_count(repo: Path) -> int:
    result = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--count", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(result.stdout) if result.returncode == 0 else 0


def subjects(repo: Path) -> list[str]:
    """Commit subjects, newest first."""
    return git(repo, "log", "--format=%s").splitlines()


def message(repo: Path, ref: str = "HEAD") -> str:
    """The full message of one commit, ending with one newline."""
    return git(repo, "log", "-1", "--format=%B", ref).rstrip("\n") + "\n"


def files_in(repo: Path, ref: str = "HEAD") -> list[str]:
    """Name-status of one commit, renames detected: `M\tnotes/a.md`, `R100\ta.md\tb.md`."""
    return git(repo, "show", "--format=", "--name-status", "-M", ref).splitlines()


def event(
    vault: Path,
    path: str,
    kind: str = "updated",
    *,
    seq: int = 0,
    old_path: str | None = None,
    tag: str = "",
) -> VaultFileEvent:
    """The event the watcher publishes for the file as it is on disk now."""
    on_disk = vault / path
    digest = content_hash(on_disk.read_bytes()) if on_disk.is_file() else None
    return VaultFileEvent(
        message_id=derive_message_id("git-test", kind, path, seq, digest, tag),
        event_type=f"vault.file.{kind}",  # type: ignore[arg-type]
        file_path=path,
        old_path=old_path,
        vault_id="test",
        content_hash=digest if kind != "deleted" else None,
        sequence=seq,
    )
