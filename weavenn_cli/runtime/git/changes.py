"""What git-auto-commit commits, and how it says so: skip rules and commit messages.

Pure functions of paths and changes; the git work is in `autocommit.py`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

MAX_FILE_BYTES = 10 * 1024 * 1024
MESSAGE_FILE_LIMIT = 20
AGENT_TRAILER = "Weave-NN-Agent"
# Matched against every folder or file name of a path, lower-cased.
SECRET_NAMES = (".env", ".env.*", "*secret*", "*password*", "*token*")
# Obsidian rewrites these on every click: never worth a commit.
WORKSPACE_FILES = (".obsidian/workspace*.json",)

ChangeKind = Literal["created", "updated", "renamed", "deleted"]
KIND_ORDER: tuple[ChangeKind, ...] = ("created", "updated", "renamed", "deleted")


@dataclass(frozen=True)
class Change:
    """One path as the commit records it (a rename carries the path it came from)."""

    kind: ChangeKind
    path: str
    old_path: str | None = None

    def describe(self) -> str:
        if self.kind == "renamed":
            return f"{self.old_path} -> {self.path}"
        return self.path


def skip_reason(path: str, vault: Path) -> str | None:
    """Why `path` (vault-relative) must never be committed, or None."""
    if any(fnmatchcase(path, pattern) for pattern in WORKSPACE_FILES):
        return "Obsidian workspace state"
    names = [name.lower() for name in path.split("/")]
    if ".git" in names:
        return "inside .git"
    if any(fnmatchcase(name, pattern) for name in names for pattern in SECRET_NAMES):
        return "looks like a secret"
    size = _size(vault / path)
    if size is not None and size > MAX_FILE_BYTES:
        return f"{size / 1024 / 1024:.1f} MB, over the {MAX_FILE_BYTES // 1024 // 1024} MB limit"
    return None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def commit_message(changes: Sequence[Change], agent_rules: Mapping[str, str]) -> str:
    """Subject from what happened, the files in the body, a trailer per agent write-back.

    `agent_rules` maps a path to the rules (comma-separated) that wrote its committed version.
    """
    if len(changes) == 1:
        change = changes[0]
        parts = [f"{change.kind.capitalize()} {change.describe()}"]
    else:
        parts = [_summary(changes), _file_list(changes)]
    trailers = [
        f"{AGENT_TRAILER}: {agent_rules[change.path]} {change.path}"
        for change in changes
        if change.path in agent_rules
    ]
    if trailers:
        parts.append("\n".join(trailers))
    return "\n\n".join(parts) + "\n"


def _summary(changes: Sequence[Change]) -> str:
    counts = Counter(change.kind for change in changes)
    return "vault: " + ", ".join(f"{counts[kind]} {kind}" for kind in KIND_ORDER if counts[kind])


def _file_list(changes: Sequence[Change]) -> str:
    lines = [f"{change.kind} {change.describe()}" for change in changes[:MESSAGE_FILE_LIMIT]]
    if len(changes) > MESSAGE_FILE_LIMIT:
        lines.append(f"... and {len(changes) - MESSAGE_FILE_LIMIT} more")
    return "\n".join(lines)


def conflict_name(path: str, stamp: str) -> str:
    """Where the local side of a conflicting note is kept: `a/b.md` -> `a/b.conflict-STAMP.md`."""
    folder, _, name = path.rpartition("/")
    stem, dot, suffix = name.rpartition(".")
    if not stem:  # no suffix (or a dot file): append
        stem, dot, suffix = name, "", ""
    renamed = f"{stem}.conflict-{stamp}{dot}{suffix}"
    return f"{folder}/{renamed}" if folder else renamed
