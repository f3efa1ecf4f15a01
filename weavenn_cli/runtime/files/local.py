"""Notes as files in the vault folder. Writes are atomic: readers see the old or the new note."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat as stat_module
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from weavenn_cli.runtime.files.errors import InvalidPath, NoteExists, NoteNotFound
from weavenn_cli.runtime.files.notes import (
    Note,
    NoteList,
    NoteSummary,
    check_frontmatter,
    jsonable,
    merge_frontmatter,
    parse_note,
    render_note,
)
from weavenn_cli.runtime.files.paths import NOTE_SUFFIX, PROTECTED_FOLDERS
from weavenn_cli.runtime.problems import ServiceUnavailable


class VaultFileService:
    """The vault on this machine's disk (VAULT_PATH)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def list(self, pattern: str, limit: int) -> NoteList:
        items: list[NoteSummary] = []
        for relative in sorted(self._note_paths()):
            if not fnmatch.fnmatchcase(relative, pattern):
                continue
            if len(items) == limit:
                return NoteList(items=items, truncated=True)
            stat = (self.root / relative).stat()
            items.append(NoteSummary(path=relative, size=stat.st_size, modified_at=_mtime(stat)))
        return NoteList(items=items, truncated=False)

    def create(self, path: str, content: str, front: dict[str, Any]) -> Note:
        target = self._file(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._write_temporary(target, render_note(front, content))
        try:
            # A hard link never replaces an existing file: two creators cannot both win.
            os.link(temporary, target)
        except FileExistsError:
            raise NoteExists(f"{path} already exists: use PUT or PATCH to change it") from None
        finally:
            temporary.unlink()
        return self.read(path)

    def read(self, path: str) -> Note:
        target = self._file(path)
        try:
            text = target.read_text(encoding="utf-8")
            stat = target.stat()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NoteNotFound(f"{path} not found", path=path) from None
        front, body = parse_note(text)
        return Note(
            path=path,
            content=body,
            frontmatter=jsonable(front),
            size=stat.st_size,
            modified_at=_mtime(stat),
        )

    def replace(self, path: str, content: str, front: dict[str, Any]) -> Note:
        target = self._existing(path)
        os.replace(self._write_temporary(target, render_note(front, content)), target)
        return self.read(path)

    def patch(self, path: str, content: str | None, front_patch: dict[str, Any]) -> Note:
        target = self._existing(path)
        front, body = parse_note(target.read_text(encoding="utf-8"))
        merged = check_frontmatter(merge_frontmatter(front, front_patch))
        text = render_note(merged, body if content is None else content)
        os.replace(self._write_temporary(target, text), target)
        return self.read(path)

    def read_bytes(self, path: str) -> bytes | None:
        """The note's bytes exactly as on disk; None when it is not there."""
        try:
            return self._file(path).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def replace_bytes_if_unchanged(self, path: str, content: bytes, expected_hash: str) -> bool:
        """Atomically replace the note with `content`, only if it still has `expected_hash`
        (sha256 of its bytes): a save made meanwhile is never overwritten. False when it
        changed or is gone. The file keeps its permissions."""
        target = self._file(path)
        try:
            stat = target.stat()
        except FileNotFoundError:
            return False
        temporary = self._write_bytes_temporary(target, content, stat.st_mode)
        try:
            current = target.read_bytes()
            if hashlib.sha256(current).hexdigest() != expected_hash:
                return False
            os.replace(temporary, target)
        except FileNotFoundError:
            return False
        finally:
            temporary.unlink(missing_ok=True)
        return True

    def delete(self, path: str) -> None:
        try:
            self._existing(path).unlink()
        except FileNotFoundError:
            raise NoteNotFound(f"{path} not found", path=path) from None

    def check(self) -> str:
        if not self.root.is_dir():
            raise ServiceUnavailable(
                f"vault {self.root} does not exist: set VAULT_PATH or create it"
            )
        return f"vault {self.root}"

    def close(self) -> None:
        return None

    def _file(self, path: str) -> Path:
        target = self.root / path
        # A symlink inside the vault must not lead outside it.
        root = self.root.resolve()
        if not target.resolve().is_relative_to(root):
            raise InvalidPath(f"{path} leads outside the vault")
        return target

    def _existing(self, path: str) -> Path:
        target = self._file(path)
        if not target.is_file():
            raise NoteNotFound(f"{path} not found", path=path)
        return target

    def _write_temporary(self, target: Path, text: str) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix=".weavenn-", suffix=".tmp", dir=target.parent)
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        return Path(name)

    def _write_bytes_temporary(self, target: Path, content: bytes, mode: int) -> Path:
        descriptor, name = tempfile.mkstemp(prefix=".weavenn-", suffix=".tmp", dir=target.parent)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fchmod(handle.fileno(), stat_module.S_IMODE(mode))
            os.fsync(handle.fileno())
        return Path(name)

    def _note_paths(self) -> Iterator[str]:
        for folder, subfolders, files in os.walk(self.root):
            subfolders[:] = [
                name
                for name in subfolders
                if name.lower() not in PROTECTED_FOLDERS and not name.startswith(".")
            ]
            for name in files:
                if name.endswith(NOTE_SUFFIX) and not name.startswith("."):
                    yield Path(folder, name).relative_to(self.root).as_posix()


def _mtime(stat: os.stat_result) -> datetime:
    return datetime.fromtimestamp(stat.st_mtime, UTC)
