"""Why a file request was refused; the codes are part of the API."""

from __future__ import annotations

from weavenn_cli.runtime.problems import Conflict, NotFound, Problem, UpstreamFailed


class InvalidPath(Problem):
    code = "INVALID_PATH"
    status = 400


class ProtectedPath(Problem):
    code = "PROTECTED_PATH"
    status = 403


class NoteExists(Conflict):
    code = "NOTE_EXISTS"


class NoteNotFound(NotFound):
    code = "NOTE_NOT_FOUND"


class ConfirmationRequired(Problem):
    code = "CONFIRMATION_REQUIRED"
    status = 400


class InvalidFrontmatter(Problem):
    code = "INVALID_FRONTMATTER"
    status = 422


class InvalidPattern(Problem):
    code = "INVALID_PATTERN"
    status = 400


class BackendFailed(UpstreamFailed):
    """The store behind the file service (Obsidian's REST API) failed."""

    code = "BACKEND_FAILED"
