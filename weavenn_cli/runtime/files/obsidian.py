"""Notes through the Obsidian Local REST API plugin (OBSIDIAN_API_URL, OBSIDIAN_API_KEY).

The plugin serves HTTPS with a self-signed certificate. Rather than switching verification
off, the client pins the certificate that OBSIDIAN_API_URL presents at first contact: that
certificate, for that URL only, is trusted; every other HTTPS client keeps normal verification.
"""

from __future__ import annotations

import fnmatch
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.files.errors import BackendFailed, NoteExists, NoteNotFound
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

NOTE_JSON = "application/vnd.olrapi.note+json"


class ObsidianFileService:
    """The vault as the running Obsidian app sees it."""

    def __init__(self, base_url: str, api_key: str, settings: Settings) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = httpx.Timeout(settings.upstream_timeout_seconds, connect=5.0)
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    def list(self, pattern: str, limit: int) -> NoteList:
        items: list[NoteSummary] = []
        for path in sorted(self._walk("")):
            if not fnmatch.fnmatchcase(path, pattern):
                continue
            if len(items) == limit:
                return NoteList(items=items, truncated=True)
            items.append(NoteSummary(path=path))
        return NoteList(items=items, truncated=False)

    def create(self, path: str, content: str, front: dict[str, Any]) -> Note:
        if self._fetch(path) is not None:
            raise NoteExists(f"{path} already exists: use PUT or PATCH to change it")
        self._put(path, render_note(front, content))
        return self.read(path)

    def read(self, path: str) -> Note:
        found = self._fetch(path)
        if found is None:
            raise NoteNotFound(f"{path} not found", path=path)
        front, body = parse_note(str(found.get("content", "")))
        stat = found.get("stat") or {}
        modified = stat.get("mtime")
        return Note(
            path=path,
            content=body,
            frontmatter=jsonable(front),
            size=stat.get("size"),
            modified_at=datetime.fromtimestamp(modified / 1000, UTC) if modified else None,
        )

    def replace(self, path: str, content: str, front: dict[str, Any]) -> Note:
        self.read(path)
        self._put(path, render_note(front, content))
        return self.read(path)

    def patch(self, path: str, content: str | None, front_patch: dict[str, Any]) -> Note:
        current = self.read(path)
        front = check_frontmatter(merge_frontmatter(current.frontmatter, front_patch))
        self._put(path, render_note(front, current.content if content is None else content))
        return self.read(path)

    def delete(self, path: str) -> None:
        response = self._request("DELETE", _vault_url(path))
        if response.status_code == 404:
            raise NoteNotFound(f"{path} not found", path=path)
        _raise_for(response)

    def check(self) -> str:
        status = self._request("GET", "/").json()
        if not status.get("authenticated", False):
            raise BackendFailed("Obsidian refused the API key: check OBSIDIAN_API_KEY")
        return f"Obsidian Local REST API at {self.base_url}"

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _fetch(self, path: str) -> dict[str, Any] | None:
        response = self._request("GET", _vault_url(path), headers={"Accept": NOTE_JSON})
        if response.status_code == 404:
            return None
        _raise_for(response)
        body: dict[str, Any] = response.json()
        return body

    def _put(self, path: str, text: str) -> None:
        headers = {"Content-Type": "text/markdown"}
        _raise_for(self._request("PUT", _vault_url(path), content=text.encode(), headers=headers))

    def _walk(self, folder: str) -> Iterator[str]:
        """Every note below `folder`; the plugin lists one folder at a time."""
        response = self._request("GET", _vault_url(folder) + ("/" if folder else ""))
        _raise_for(response)
        for name in response.json().get("files", []):
            path = f"{folder}/{name}" if folder else str(name)
            if path.endswith("/"):
                folder_name = path.rstrip("/").rsplit("/", 1)[-1]
                if folder_name.lower() not in PROTECTED_FOLDERS:
                    yield from self._walk(path.rstrip("/"))
            elif path.endswith(NOTE_SUFFIX):
                yield path

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client().request(method, url, **kwargs)
        except (httpx.TransportError, OSError, ssl.SSLError) as error:
            raise BackendFailed(f"cannot reach Obsidian at {self.base_url}: {error}") from None

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(
                    base_url=self.base_url,
                    headers={"Authorization": f"Bearer {self.api_key}"},
                    timeout=self.timeout,
                    verify=_pinned_context(self.base_url),
                )
            return self._http


def _pinned_context(base_url: str) -> ssl.SSLContext | bool:
    """Trust exactly the certificate the plugin presents (it is self-signed)."""
    parts = urlsplit(base_url)
    if parts.scheme != "https":
        return True
    host = parts.hostname or "127.0.0.1"
    certificate = ssl.get_server_certificate((host, parts.port or 443), timeout=5)
    context = ssl.create_default_context(cadata=certificate)
    # The pin is the identity check: the plugin's certificate names 127.0.0.1 whatever
    # address it is reached at.
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def _vault_url(path: str) -> str:
    return "/vault/" + quote(path, safe="/")


def _raise_for(response: httpx.Response) -> None:
    if response.status_code in (401, 403):
        raise BackendFailed("Obsidian refused the API key: check OBSIDIAN_API_KEY")
    if response.status_code >= 400:
        try:
            message = response.json().get("message", "")
        except ValueError:
            message = response.text[:200]
        raise BackendFailed(f"Obsidian answered HTTP {response.status_code}: {message}")
