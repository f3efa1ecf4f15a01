"""Notes through the extracted file service's HTTP API (FILE_SERVICE_URL)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.files.notes import Note, NoteList
from weavenn_cli.runtime.remote import ServiceClient


class RemoteFileService:
    def __init__(self, base_url: str, settings: Settings) -> None:
        self.client = ServiceClient(base_url, settings)

    def list(self, pattern: str, limit: int) -> NoteList:
        response = self.client.call("GET", "/files", params={"pattern": pattern, "limit": limit})
        return NoteList.model_validate(response.json())

    def create(self, path: str, content: str, front: dict[str, Any]) -> Note:
        body = {"path": path, "content": content, "frontmatter": front}
        return Note.model_validate(self.client.call("POST", "/files", json=body).json())

    def read(self, path: str) -> Note:
        return Note.model_validate(self.client.call("GET", _url(path)).json())

    def replace(self, path: str, content: str, front: dict[str, Any]) -> Note:
        body = {"content": content, "frontmatter": front}
        return Note.model_validate(self.client.call("PUT", _url(path), json=body).json())

    def patch(self, path: str, content: str | None, front_patch: dict[str, Any]) -> Note:
        body: dict[str, Any] = {"frontmatter": front_patch}
        if content is not None:
            body["content"] = content
        return Note.model_validate(self.client.call("PATCH", _url(path), json=body).json())

    def delete(self, path: str) -> None:
        self.client.call("DELETE", _url(path), params={"confirm": "true"})

    def check(self) -> str:
        self.client.call("GET", "/health")
        return f"file service at {self.client.base_url}"

    def close(self) -> None:
        self.client.close()


def _url(path: str) -> str:
    return "/files/" + quote(path, safe="/")
