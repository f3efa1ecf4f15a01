"""Search through the extracted file service's HTTP API (FILE_SERVICE_URL)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.remote import ServiceClient
from weavenn_cli.runtime.search.service import Backlinks, Orphans, SearchResults
from weavenn_cli.runtime.vault.queries import NoteDetails, VaultStats


class RemoteSearchService:
    def __init__(self, base_url: str, settings: Settings) -> None:
        self.client = ServiceClient(base_url, settings)

    def search(self, query: str | None, tag: str | None, limit: int) -> SearchResults:
        params: dict[str, Any] = {"limit": limit}
        if query is not None:
            params["q"] = query
        if tag is not None:
            params["tag"] = tag
        response = self.client.call("GET", "/search", params=params)
        return SearchResults.model_validate(response.json())

    def note(self, path: str) -> NoteDetails:
        return NoteDetails.model_validate(self.client.call("GET", _url(path)).json())

    def backlinks(self, path: str) -> Backlinks:
        return Backlinks.model_validate(self.client.call("GET", _url(path) + "/backlinks").json())

    def stats(self) -> VaultStats:
        return VaultStats.model_validate(self.client.call("GET", "/graph/stats").json())

    def orphans(self, limit: int) -> Orphans:
        response = self.client.call("GET", "/notes/orphans", params={"limit": limit})
        return Orphans.model_validate(response.json())

    def close(self) -> None:
        self.client.close()


def _url(path: str) -> str:
    # Canonical paths end in `.md`, so none is mistaken for `/notes/orphans`.
    return "/notes/" + quote(path, safe="/")
