"""The file service interface, and the one place that picks its implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from weavenn_cli.runtime.files.notes import Note, NoteList

if TYPE_CHECKING:
    from weavenn_cli.runtime.config import Settings

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000


class FileService(Protocol):
    """Notes of the vault. Paths are canonical note paths (see `paths.note_path`)."""

    def list(self, pattern: str, limit: int) -> NoteList: ...

    def create(self, path: str, content: str, front: dict[str, Any]) -> Note: ...

    def read(self, path: str) -> Note: ...

    def replace(self, path: str, content: str, front: dict[str, Any]) -> Note: ...

    def patch(self, path: str, content: str | None, front_patch: dict[str, Any]) -> Note: ...

    def delete(self, path: str) -> None: ...

    def check(self) -> str:
        """Raise when the store cannot serve requests; else say what it is."""
        ...

    def close(self) -> None: ...


def file_service_for(settings: Settings, *, remote: bool) -> FileService:
    """Remote (FILE_SERVICE_URL), the Obsidian REST API when configured, else the vault on disk."""
    if remote:
        from weavenn_cli.runtime.files.remote import RemoteFileService

        return RemoteFileService(settings.file_service_url, settings)
    if settings.obsidian_api_url:
        from weavenn_cli.runtime.files.obsidian import ObsidianFileService

        key = settings.obsidian_api_key.get_secret_value() if settings.obsidian_api_key else ""
        return ObsidianFileService(settings.obsidian_api_url, key, settings)
    from weavenn_cli.runtime.files.local import VaultFileService

    return VaultFileService(settings.vault_path)
