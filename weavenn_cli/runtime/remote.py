"""The HTTP client the remote implementations share: errors come back as the same exceptions."""

from __future__ import annotations

from typing import Any

import httpx

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.problems import UpstreamTimeout, UpstreamUnavailable, problem_from_answer


class ServiceClient:
    """Calls one extracted service; its answers become values or the exceptions it raised."""

    def __init__(self, base_url: str, settings: Settings, **client_options: Any) -> None:
        headers = {}
        keys = settings.api_keys()
        if keys:
            headers["Authorization"] = f"Bearer {keys[0]}"
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(settings.upstream_timeout_seconds, connect=5.0),
            **client_options,
        )

    def call(
        self, method: str, path: str, *, user_id: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {}) or {}
        if user_id:
            headers["X-User-Id"] = user_id
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"{self.base_url} did not answer in time") from None
        except httpx.TransportError as error:
            raise UpstreamUnavailable(f"cannot reach {self.base_url}: {error}") from None
        if response.status_code >= 400:
            raise problem_from_answer(response.status_code, _json_or_none(response))
        return response

    def close(self) -> None:
        self.http.close()


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
