"""Git through its command line, with argument lists (never a shell) and validated input."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from weavenn_cli.runtime.files.paths import vault_path
from weavenn_cli.runtime.problems import Conflict, NotFound, Problem, ServiceUnavailable
from weavenn_cli.runtime.redaction import redact_credentials

GIT_TIMEOUT_SECONDS = 60
MAX_LOG = 500
_HEX = re.compile(r"^[0-9a-fA-F]{4,64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_FIELD, _RECORD = "\x1f", "\x1e"
DEFAULT_IDENTITY = ("weavenn", "weavenn@localhost")


class InvalidRef(Problem):
    code = "INVALID_REF"
    status = 400


class CommitNotFound(NotFound):
    code = "COMMIT_NOT_FOUND"


class NothingToCommit(Conflict):
    code = "NOTHING_TO_COMMIT"


class NoRemote(Conflict):
    code = "NO_REMOTE"


class GitFailed(Conflict):
    """Git refused; the message may quote git or a remote, so credentials are taken out."""

    code = "GIT_FAILED"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(redact_credentials(message), **details)


class FileStatus(BaseModel):
    path: str
    index: str
    worktree: str


class Status(BaseModel):
    branch: str | None
    upstream: str | None
    ahead: int
    behind: int
    clean: bool
    files: list[FileStatus]


class LogEntry(BaseModel):
    commit: str
    author: str
    email: str
    date: str
    message: str


class CommitResult(BaseModel):
    commit: str
    files: list[str]


class SyncResult(BaseModel):
    remote: str
    branch: str | None
    output: str


class GitRepository:
    """One working tree (VAULT_PATH). Writes are serialised within the process."""

    def __init__(self, path: Path, env: Mapping[str, str] | None = None) -> None:
        self.path = path
        self._write_lock = threading.Lock()
        # Added to every git command's environment (identity, literal pathspecs...).
        self._env = dict(env or {})

    def check(self) -> str:
        result = self._git("rev-parse", "--is-inside-work-tree", check=False)
        if result.returncode != 0:
            raise ServiceUnavailable(f"{self.path} is not a git repository: run `git init` there")
        return f"git repository {self.path}"

    def status(self) -> Status:
        out = self._git("status", "--porcelain=v1", "--branch", "-z").stdout
        entries = [entry for entry in out.split("\0") if entry]
        branch, upstream, ahead, behind = _branch_line(entries[0] if entries else "")
        files = [
            FileStatus(path=entry[3:], index=entry[0], worktree=entry[1])
            for entry in entries[1:]
            if len(entry) > 3 and entry[2] == " "
        ]
        return Status(
            branch=branch,
            upstream=upstream,
            ahead=ahead,
            behind=behind,
            clean=not files,
            files=files,
        )

    def log(self, path: str | None = None, limit: int = 20) -> list[LogEntry]:
        if not self._has_commits():
            return []
        fields = _FIELD.join(("%H", "%an", "%ae", "%aI", "%s")) + _RECORD
        args = ["log", f"--max-count={limit}", f"--format={fields}", "--"]
        out = self._git(*args, *_paths(path)).stdout
        return [
            LogEntry(
                **dict(zip(LogEntry.model_fields, record.strip("\n").split(_FIELD), strict=True))
            )
            for record in out.split(_RECORD)
            if record.strip()
        ]

    def diff(self, path: str | None = None, commit: str | None = None) -> str:
        if commit is not None:
            sha = self.resolve(commit)
            return self._git("show", "--format=", "--patch", sha, "--", *_paths(path)).stdout
        base = ["HEAD"] if self._has_commits() else []
        return self._git("diff", *base, "--", *_paths(path)).stdout

    def commit(self, message: str, files: list[str] | None = None) -> CommitResult:
        if not message.strip():
            raise InvalidRef("commit message is empty")
        paths = [vault_path(file) for file in files or []]
        with self._write_lock:
            self._git("add", "--all", "--", *(paths or ["."]))
            staged = self._git("diff", "--cached", "--name-only", "-z").stdout
            if not staged.strip("\0"):
                raise NothingToCommit("nothing to commit: the files are unchanged")
            self._git(*self._identity(), "commit", "--quiet", "--no-verify", "-m", message)
        sha = self._git("rev-parse", "HEAD").stdout.strip()
        return CommitResult(commit=sha, files=[f for f in staged.split("\0") if f])

    def push(self, remote: str | None = None, branch: str | None = None) -> SyncResult:
        name = self._remote(remote)
        target = _checked_branch(branch) if branch else self._current_branch()
        with self._write_lock:
            result = self._git("push", "--porcelain", name, f"HEAD:refs/heads/{target}")
        return SyncResult(
            remote=name, branch=target, output=redact_credentials(result.stdout.strip())
        )

    def pull(self, remote: str | None = None, branch: str | None = None) -> SyncResult:
        name = self._remote(remote)
        target = _checked_branch(branch) if branch else self._current_branch()
        with self._write_lock:
            result = self._git(*self._identity(), "pull", "--ff-only", name, target)
        return SyncResult(
            remote=name, branch=target, output=redact_credentials(result.stdout.strip())
        )

    def resolve(self, ref: str) -> str:
        """The commit `ref` names; refused unless it is a hash or a well-formed ref name."""
        if not (_HEX.match(ref) or _NAME.match(ref)) or ".." in ref or ref.endswith((".", "/")):
            raise InvalidRef(f"{ref!r} is not a commit hash or a branch/tag name")
        result = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if result.returncode != 0:
            raise CommitNotFound(f"no commit {ref!r} in the vault repository")
        return result.stdout.strip()

    def remotes(self) -> list[str]:
        return self._git("remote").stdout.split()

    def _remote(self, requested: str | None) -> str:
        remotes = self.remotes()
        if not remotes:
            raise NoRemote("the vault repository has no remote: add one with `git remote add`")
        name = requested or ("origin" if "origin" in remotes else remotes[0])
        if name not in remotes:
            raise NoRemote(f"no remote {name!r}; the repository has {', '.join(remotes)}")
        return name

    def _current_branch(self) -> str:
        result = self._git("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        if result.returncode != 0:
            raise GitFailed("HEAD is detached: name the branch to push or pull")
        return result.stdout.strip()

    def _has_commits(self) -> bool:
        return self._git("rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode == 0

    def _identity(self) -> list[str]:
        """Commit as weavenn when the repository has no identity of its own."""
        configured = self._git("config", "user.email", check=False).stdout.strip()
        if configured:
            return []
        name, email = DEFAULT_IDENTITY
        return ["-c", f"user.name={name}", "-c", f"user.email={email}"]

    def _git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **self._env}
        try:
            result = subprocess.run(
                ["git", "-C", str(self.path), *args],
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT_SECONDS,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GitFailed(f"git {args[0]} took longer than {GIT_TIMEOUT_SECONDS}s") from None
        except FileNotFoundError:
            raise ServiceUnavailable("git is not installed on this machine") from None
        if check and result.returncode != 0:
            reason = (result.stderr or result.stdout).strip().splitlines()
            raise GitFailed(f"git {args[0]} failed: {reason[-1] if reason else result.returncode}")
        return result


def _paths(path: str | None) -> list[str]:
    return [vault_path(path)] if path else []


def _checked_branch(branch: str) -> str:
    if not _NAME.match(branch) or ".." in branch or branch.endswith((".", "/", ".lock")):
        raise InvalidRef(f"{branch!r} is not a valid branch name")
    return branch


def _branch_line(line: str) -> tuple[str | None, str | None, int, int]:
    """Parse `## main...origin/main [ahead 1, behind 2]`."""
    match = re.match(
        r"^## (?:No commits yet on )?(?P<branch>[^.\s]+(?:\.[^.\s]+)*)"
        r"(?:\.\.\.(?P<upstream>\S+))?(?: \[(?P<track>[^\]]*)\])?",
        line,
    )
    if not match:
        return None, None, 0, 0
    track: dict[str, Any] = dict(
        part.split(" ", 1) for part in (match["track"] or "").split(", ") if " " in part
    )
    return (
        match["branch"],
        match["upstream"],
        int(track.get("ahead", 0)),
        int(track.get("behind", 0)),
    )
