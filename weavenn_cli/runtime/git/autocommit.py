"""The vault repository as git-auto-commit drives it: commit what events name, then push.

Git's cost is per commit, whatever the number of files: one `git status` (to learn which of
the named paths really changed), one `git add`, one `git commit` naming those paths (so what
someone else staged stays out of it). Paths nothing changed in cost no write at all, which is
why a replayed event never makes an empty commit.

Commands run from the top of the work tree; the vault may be a folder inside it, so paths are
vault-relative outside this class and root-relative inside.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from weavenn_cli.runtime.errors import ConfigError, WeavennError
from weavenn_cli.runtime.git.changes import Change, ChangeKind, commit_message, conflict_name
from weavenn_cli.runtime.git.repository import GitRepository, InvalidRef, _checked_branch
from weavenn_cli.runtime.redaction import redact_credentials

log = logging.getLogger(__name__)

INDEX_LOCK_WAIT_SECONDS = 10.0
PUSH_ATTEMPTS = 3


class IndexLocked(Exception):
    """Another git process holds the index lock beyond the wait: try the batch again later."""


class PushDeferred(Exception):
    """The push cannot happen now (remote unreachable, working tree in the way).

    The message names the remote (GIT_REMOTE may be a URL carrying a token) and quotes git:
    credentials are taken out here, so no log line or report can show them.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact_credentials(message))


@dataclass(frozen=True)
class Requested:
    """A path an event names; `old_path` for a move."""

    path: str
    old_path: str | None = None


@dataclass(frozen=True)
class CommitResult:
    sha: str
    changes: tuple[Change, ...]
    message: str


@dataclass(frozen=True)
class KeptRemote:
    """A note changed on both sides: the remote version stayed, ours was saved beside it."""

    path: str
    saved_as: str | None  # None when our side had deleted it


@dataclass
class PushResult:
    pushed: bool
    conflicts: list[KeptRemote] = field(default_factory=list)


def identity_environment(name: str, email: str) -> dict[str, str]:
    """Author and committer of every commit, and git never waiting on a person."""
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        # A note may be called `[draft] what?.md`: paths are never globs.
        "GIT_LITERAL_PATHSPECS": "1",
        "GIT_EDITOR": "true",
    }


class VaultRepository(GitRepository):
    """The git work tree holding the vault, with the operations git-auto-commit needs."""

    def __init__(
        self,
        top: Path,
        env: Mapping[str, str],
        *,
        prefix: str = "",
        lock_wait_seconds: float = INDEX_LOCK_WAIT_SECONDS,
    ) -> None:
        super().__init__(top, env)
        self.prefix = prefix  # the vault's folder inside the work tree, "" or "notes/"
        self.vault = top / prefix
        self.lock_wait_seconds = lock_wait_seconds
        git_path = self._git("rev-parse", "--git-path", "index.lock").stdout.strip()
        self._index_lock = top / git_path
        self._git_dir = self._index_lock.parent

    @classmethod
    def open(
        cls,
        vault: Path,
        *,
        env: Mapping[str, str],
        auto_init: bool,
        branch: str | None = None,
        lock_wait_seconds: float = INDEX_LOCK_WAIT_SECONDS,
    ) -> VaultRepository:
        """The repository of `vault`, initialised first when allowed; else a one-line error."""
        if not vault.is_dir():
            raise WeavennError(f"vault folder {vault} does not exist: set VAULT_PATH to the vault")
        probe = GitRepository(vault, env)
        inside = probe._git("rev-parse", "--is-inside-work-tree", check=False)
        if "dubious ownership" in inside.stderr:
            raise WeavennError(
                f"git refuses {vault}: it belongs to another user; trust it with "
                f"`git config --global --add safe.directory {vault}`"
            )
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            if not auto_init:
                raise WeavennError(
                    f"{vault} is not a git repository: run `git init` there, "
                    "or set GIT_AUTO_INIT=true to let git-auto-commit do it"
                )
            initial = [f"--initial-branch={branch}"] if branch else []
            probe._git("init", "--quiet", *initial)
            log.info("initialised %s as a git repository", vault)
        top = Path(probe._git("rev-parse", "--show-toplevel").stdout.strip())
        prefix = probe._git("rev-parse", "--show-prefix").stdout.strip()
        repository = cls(top, env, prefix=prefix, lock_wait_seconds=lock_wait_seconds)
        repository.abort_interrupted_rebase()
        return repository

    def abort_interrupted_rebase(self) -> None:
        """A process killed while rebasing for a push leaves the rebase half done: undo it.

        The local commits come back as they were; the next push rebases again.
        """
        if self._rebasing():
            log.warning("%s: a rebase was left unfinished; aborting it", self.path)
            self._git("rebase", "--abort")

    # -- committing ---------------------------------------------------------------------------

    def commit_requested(
        self, requested: Sequence[Requested], agent_rules: Mapping[str, str]
    ) -> CommitResult | None:
        """Commit the named paths that changed, in one commit; None when none did."""
        named = _unique(p for r in requested for p in (r.old_path, r.path) if p)
        if not named:
            return None
        with self._write_lock:  # a rebase for a push may be rewriting the branch
            self._wait_for_index_lock()
            kinds = self._changed({self.prefix + path: path for path in named})
            if not kinds:
                return None
            changes = _pair_renames(kinds, requested)
            message = commit_message(changes, agent_rules)
            paths = [self.prefix + path for path in kinds]
            self._git("add", "--all", "--", *paths)
            self._git("commit", "--quiet", "--no-verify", "-m", message, "--", *paths)
            sha = self._git("rev-parse", "HEAD").stdout.strip()
        return CommitResult(sha=sha, changes=tuple(changes), message=message)

    def _changed(self, root_to_vault: Mapping[str, str]) -> dict[str, ChangeKind]:
        """The vault paths among `root_to_vault` that differ from HEAD, with how."""
        out = self._git(
            "--no-optional-locks",
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
            "--",
            *root_to_vault,
        ).stdout
        found: dict[str, ChangeKind] = {}
        for entry in out.split("\0"):
            if len(entry) < 4 or entry[3:] not in root_to_vault:
                continue
            kind = _kind(entry[:2])
            if kind is not None:
                found[root_to_vault[entry[3:]]] = kind
        # In the order the events named them, for a readable message.
        order = list(root_to_vault.values())
        return {path: found[path] for path in order if path in found}

    def _wait_for_index_lock(self) -> None:
        deadline = time.monotonic() + self.lock_wait_seconds
        waited = False
        while self._index_lock.exists():
            if time.monotonic() >= deadline:
                raise IndexLocked(
                    f"{self._index_lock} is still held after {self.lock_wait_seconds:g}s "
                    "(another git process, or a stale lock to remove): retrying later"
                )
            if not waited:
                log.info("waiting for %s, held by another git process", self._index_lock)
                waited = True
            time.sleep(0.1)

    # -- pushing ------------------------------------------------------------------------------

    def push_branch(self, remote: str, branch: str | None) -> PushResult:
        """Push HEAD to `remote`'s `branch`, integrating the remote's commits when it is ahead.

        Raises PushDeferred when it cannot push now (the caller retries later). The push itself
        runs without the write lock: it touches neither the index nor the working tree.
        """
        result = PushResult(pushed=False)
        if not self._has_commits():  # a fresh repository: nothing to push yet
            return result
        target = branch or self._current_branch()
        for _ in range(PUSH_ATTEMPTS):
            push = self._git(
                "push", "--porcelain", remote, f"HEAD:refs/heads/{target}", check=False
            )
            if push.returncode == 0:
                result.pushed = True
                return result
            if "[rejected]" not in push.stdout + push.stderr:
                raise PushDeferred(f"push to {remote}/{target} failed: {_last_line(push)}")
            # The remote is ahead: replay our commits on top of it, then push again.
            result.conflicts += self._rebase_onto(remote, target)
        raise PushDeferred(
            f"push to {remote}/{target} still rejected after {PUSH_ATTEMPTS} rebases "
            "(the remote moves fast)"
        )

    def _rebase_onto(self, remote: str, branch: str) -> list[KeptRemote]:
        """`git pull --rebase`, keeping the remote version of whatever conflicts."""
        fetch = self._git("fetch", "--quiet", remote, branch, check=False)
        if fetch.returncode != 0:
            raise PushDeferred(f"cannot fetch {remote}/{branch}: {_last_line(fetch)}")
        with self._write_lock:
            self._wait_for_index_lock()
            if self._tracked_changes():
                raise PushDeferred(
                    "the remote is ahead and tracked files have uncommitted changes: "
                    "the rebase waits until they are committed"
                )
            return self._rebase_keeping_remote(remote, branch)

    def _rebase_keeping_remote(self, remote: str, branch: str) -> list[KeptRemote]:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        kept: list[KeptRemote] = []
        step = self._git("rebase", "--quiet", "FETCH_HEAD", check=False)
        while step.returncode != 0:
            unmerged = self._unmerged() if self._rebasing() else {}
            if not unmerged:
                self._git("rebase", "--abort", check=False)
                raise PushDeferred(f"git rebase onto {remote}/{branch} failed: {_last_line(step)}")
            kept += [self._keep_remote(path, stages, stamp) for path, stages in unmerged.items()]
            nothing_left = self._git("diff", "--cached", "--quiet", check=False).returncode == 0
            step = self._git("rebase", "--skip" if nothing_left else "--continue", check=False)
        return kept

    def _keep_remote(self, path: str, stages: set[int], stamp: str) -> KeptRemote:
        # During a rebase "ours" (stage 2) is the remote side, "theirs" (3) the commit replayed.
        saved = None
        if 3 in stages:
            saved = conflict_name(path, stamp)
            self._git("checkout", "--theirs", "--", path)
            os.replace(self.path / path, self.path / saved)
            self._git("add", "--", saved)
        if 2 in stages:
            self._git("checkout", "--ours", "--", path)
            self._git("add", "--", path)
        else:
            self._git("rm", "--quiet", "--cached", "--", path)
            (self.path / path).unlink(missing_ok=True)
        vault_saved = self._vault_relative(saved) if saved else None
        return KeptRemote(path=self._vault_relative(path), saved_as=vault_saved)

    def _vault_relative(self, root_path: str) -> str:
        return root_path.removeprefix(self.prefix)

    def _tracked_changes(self) -> bool:
        out = self._git(
            "--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=no"
        ).stdout
        return bool(out.strip("\0"))

    def _rebasing(self) -> bool:
        return any((self._git_dir / name).exists() for name in ("rebase-merge", "rebase-apply"))

    def _unmerged(self) -> dict[str, set[int]]:
        """Conflicting paths (root-relative) with the index stages they have."""
        out = self._git("ls-files", "--unmerged", "--full-name", "-z").stdout
        stages: dict[str, set[int]] = {}
        for entry in out.split("\0"):
            info, _, path = entry.partition("\t")
            if path:
                stages.setdefault(path, set()).add(int(info.split()[2]))
        return stages


def check_push_target(remote: str, branch: str | None) -> None:
    """GIT_REMOTE and GIT_BRANCH go on git's command line: refuse what git would misread."""
    if not remote.strip() or remote.startswith("-") or any(c.isspace() for c in remote):
        raise ConfigError(
            f"GIT_REMOTE={redact_credentials(remote)!r} is not a remote name or URL: "
            "give e.g. origin"
        )
    if branch is not None:
        try:
            _checked_branch(branch)
        except InvalidRef:
            raise ConfigError(
                f"GIT_BRANCH={branch!r} is not a valid branch name: give e.g. main"
            ) from None


def _kind(xy: str) -> ChangeKind | None:
    """How a `git status --porcelain` code changes the path against HEAD."""
    if xy == "AD":  # staged as new, then removed: nothing against HEAD
        return None
    if "?" in xy or xy[0] == "A":
        return "created"
    if "D" in xy:
        return "deleted"
    return "updated"


def _pair_renames(kinds: Mapping[str, ChangeKind], requested: Sequence[Requested]) -> list[Change]:
    """A move whose old path is deleted and new path created is one rename."""
    renamed: dict[str, str] = {}
    for request in requested:
        old, new = request.old_path, request.path
        if old and kinds.get(old) == "deleted" and kinds.get(new) == "created":
            renamed[new] = old
    gone = set(renamed.values())
    return [
        Change("renamed", path, renamed[path]) if path in renamed else Change(kind, path)
        for path, kind in kinds.items()
        if path not in gone
    ]


def _unique(paths: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(paths))


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    """The line of git's output that says what went wrong (its `error:`/`fatal:` line)."""
    text = f"{result.stderr}\n{result.stdout}".strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return redact_credentials((errors or lines or ["no output"])[0])
