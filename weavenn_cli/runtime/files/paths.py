"""Which vault paths a client may name, and their one canonical spelling.

Paths arrive already percent-decoded once by the HTTP server; anything that still decodes to
something dangerous (`%2e%2e/`) is refused too, because some layer behind us (the Obsidian
plugin, a proxy) may decode again.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from weavenn_cli.runtime.files.errors import InvalidPath, ProtectedPath

MAX_PATH_LENGTH = 500
PROTECTED_FOLDERS = frozenset({".obsidian", ".git", "_system"})
NOTE_SUFFIX = ".md"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def vault_path(raw: str) -> str:
    """A vault-relative path as given (any file), or InvalidPath / ProtectedPath."""
    for candidate in {raw, unquote(raw)}:
        _refuse_unsafe(candidate)
        if any(part.lower() in PROTECTED_FOLDERS for part in candidate.split("/")):
            raise ProtectedPath(
                f"{raw!r} is inside a protected folder ({', '.join(sorted(PROTECTED_FOLDERS))})"
            )
    return raw


def note_path(raw: str) -> str:
    """The canonical path of a note: vault-relative, safe, ending in `.md`."""
    path = vault_path(raw)
    if not path.endswith(NOTE_SUFFIX):
        path += NOTE_SUFFIX
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidPath(f"path is {len(path)} characters long; at most {MAX_PATH_LENGTH}")
    return path


def _refuse_unsafe(path: str) -> None:
    if not path or not path.strip():
        raise InvalidPath("path is empty: give a vault-relative path such as notes/idea.md")
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidPath(f"path is {len(path)} characters long; at most {MAX_PATH_LENGTH}")
    if _CONTROL.search(path):
        raise InvalidPath("path contains a control character (NUL, newline...)")
    if "\\" in path:
        raise InvalidPath("path contains a backslash: use / between folders")
    if path.startswith("/") or _DRIVE.match(path):
        raise InvalidPath(f"{path!r} is absolute: give a path relative to the vault")
    segments = path.split("/")
    if any(segment in ("..", ".") for segment in segments):
        raise InvalidPath(f"{path!r} contains '..' or '.': give a path inside the vault")
    if any(segment == "" for segment in segments):
        raise InvalidPath(f"{path!r} contains an empty folder name ('//' or a trailing '/')")
