"""Which files of a vault are notes, vault-relative paths, and reading them."""

from __future__ import annotations

import fnmatch
import logging
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.errors import UsageError

log = logging.getLogger(__name__)


def split_patterns(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class PathFilter:
    """FILE_PATTERNS and IGNORE_PATTERNS applied to vault-relative paths."""

    file_patterns: tuple[str, ...] = ("*.md",)
    ignore_patterns: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> PathFilter:
        return cls(split_patterns(settings.file_patterns), split_patterns(settings.ignore_patterns))

    def ignores(self, relative: str) -> bool:
        """True when any component of the path (a folder or the file) matches an ignore pattern."""
        ignored = self._ignored
        return ignored is not None and any(ignored.match(part) for part in relative.split("/"))

    def accepts(self, relative: str) -> bool:
        name = posixpath.basename(relative).lower()
        return bool(self._file_name.match(name)) and not self.ignores(relative)

    # The patterns as one compiled expression each: a vault scan tests every path.
    @cached_property
    def _ignored(self) -> re.Pattern[str] | None:
        return _any_of(self.ignore_patterns) if self.ignore_patterns else None

    @cached_property
    def _file_name(self) -> re.Pattern[str]:
        return _any_of(tuple(pattern.lower() for pattern in self.file_patterns))


def _any_of(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """Matches a whole name that fnmatchcase would match with one of `patterns`."""
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))


def resolve_vault(path: Path) -> Path:
    root = path.expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"vault folder {path} not found: pass --vault PATH or set VAULT_PATH")
    return root


def relative_to_vault(root: Path, absolute: Path) -> str | None:
    """The vault-relative POSIX path of a file under `root`, None when it cannot be one.

    A name that is not valid UTF-8 cannot be stored or published as text: it is skipped.
    """
    try:
        relative = absolute.relative_to(root).as_posix()
    except ValueError:
        return None
    return relative if _is_utf8(relative) else None


def user_note_path(user_path: str, root: Path) -> str:
    """A note path given by a user, as a vault-relative path; refuses paths outside the vault."""
    given = Path(user_path).expanduser()
    if given.is_absolute():
        relative = relative_to_vault(root.resolve(), Path(os.path.normpath(given)))
        if relative is None:
            raise UsageError(f"{user_path} is outside the vault {root}: give a vault-relative path")
        return relative
    normal = posixpath.normpath(PurePosixPath(user_path.replace("\\", "/")).as_posix())
    if normal == ".." or normal.startswith("../"):
        raise UsageError(f"{user_path} leads outside the vault: give a vault-relative path")
    return normal


def scan_vault(root: Path, path_filter: PathFilter) -> list[str]:
    """Every note of the vault, as sorted vault-relative paths (ignored folders not entered)."""
    return sorted(_walk(root, path_filter))


def scan_folder(root: Path, folder: Path, path_filter: PathFilter) -> list[str]:
    """The notes under one folder of the vault (a folder that just appeared, for instance)."""
    return sorted(_walk(root, path_filter, start=folder))


def _walk(root: Path, path_filter: PathFilter, start: Path | None = None) -> Iterator[str]:
    for folder, dirs, files in os.walk(start or root):
        relative_folder = relative_to_vault(root, Path(folder))
        if relative_folder is None:
            dirs[:] = []
            continue
        prefix = "" if relative_folder == "." else relative_folder + "/"
        dirs[:] = [d for d in dirs if not path_filter.ignores(prefix + d)]
        for name in files:
            # The folder's relative path plus the name: a Path per file costs more than the
            # rest of the scan together.
            relative = prefix + name
            if _is_utf8(relative) and path_filter.accepts(relative):
                yield relative


def _is_utf8(relative: str) -> bool:
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        log.warning("skipping %r: its name is not valid UTF-8", relative)
        return False
    return True


def read_note(root: Path, relative: str) -> bytes | None:
    """The file's bytes, None when it is gone (or is not a regular file)."""
    try:
        return (root / relative).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
