"""The gateway's proxying: requests go to another process, answers stream back.

`weavenn serve gateway` is the strangler fig's façade. The routes of extracted services are
decided per user by the rollout middleware (`api/rollout.py`): the new side is the service,
the legacy side the monolith (MONOLITH_URL), where every other path goes too. Method, path,
query, headers and body reach the other process unchanged (hop-by-hop headers aside), and the
answer streams back as it arrives. Authentication and rate limiting are the app's middlewares.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from fastapi import APIRouter, Request
from multidict import CIMultiDict
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse
from yarl import URL

from weavenn_cli.runtime.api.middleware import request_id_of
from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.problems import UpstreamTimeout, UpstreamUnavailable

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# RFC 9110 section 7.6.1, plus what the proxy sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
# The gateway sets these itself.
REQUEST_HEADERS_DROPPED = HOP_BY_HOP | {
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
}
# uvicorn adds its own.
ANSWER_HEADERS_DROPPED = HOP_BY_HOP | {"date", "server"}
# Headers aiohttp would add when the client sent none: the request goes on as it came.
AUTO_HEADERS_SKIPPED = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_CONNECTIONS = 200
# Tells the monolith the gateway already decided: serve it here, do not route it again.
LEGACY_PIN = ("x-weavenn-route", "legacy")


@dataclass(frozen=True)
class Upstream:
    name: str
    base_url: str


@dataclass(frozen=True)
class Outgoing:
    """A request as the gateway sends it on."""

    method: str
    url: URL
    headers: list[tuple[str, str]]


def upstreams(settings: Settings) -> dict[str, Upstream]:
    """Path prefix -> service, as the design's ingress and gateway route them."""
    task = Upstream("task-service", settings.service_url("task-service"))
    file = Upstream("file-service", settings.service_url("file-service"))
    git = Upstream("git-service", settings.service_url("git-service"))
    return {
        "/tasks": task,
        "/v1/tasks": task,
        "/v2/tasks": task,
        "/files": file,
        "/search": file,
        "/notes": file,
        "/graph": file,
        "/git": git,
    }


def monolith(settings: Settings) -> Upstream:
    return Upstream("monolith", settings.monolith_url.rstrip("/"))


class Proxy:
    """The HTTP client of a process that proxies: one keep-alive pool for every upstream.

    aiohttp rather than httpx here: per proxied request it costs a fraction of the CPU
    (bench/gateway.py), and on a gateway that is most of the work. Timeouts: 5 s to connect,
    UPSTREAM_TIMEOUT_SECONDS between bytes of the answer.
    """

    def __init__(self, settings: Settings) -> None:
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=CONNECT_TIMEOUT_SECONDS,
            sock_read=settings.upstream_timeout_seconds,
        )
        self._session: aiohttp.ClientSession | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The session lives in the server's event loop, from startup to shutdown."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
            timeout=self.timeout,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=AUTO_HEADERS_SKIPPED,
        )
        try:
            yield
        finally:
            await self._session.close()

    async def send(
        self,
        outgoing: Outgoing,
        body: bytes | AsyncIterator[bytes] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """The answer, headers read and body still to stream; aiohttp errors as raised."""
        if self._session is None:
            raise RuntimeError("the proxy is used before the server started")
        return await self._session.request(
            outgoing.method,
            outgoing.url,
            headers=CIMultiDict(outgoing.headers),
            data=body,
            allow_redirects=False,
            timeout=timeout or self.timeout,
        )


def monolith_router(upstream: Upstream, proxy: Proxy) -> APIRouter:
    """Every path the gateway does not answer itself goes to the monolith, as legacy."""

    async def to_monolith(request: Request) -> StreamingResponse:
        return await forward(request, upstream, proxy, [LEGACY_PIN])

    router = APIRouter()
    router.add_api_route("/{rest:path}", to_monolith, methods=METHODS, include_in_schema=False)
    return router


def outgoing_request(
    request: Request, upstream: Upstream, extra_headers: Sequence[tuple[str, str]] = ()
) -> Outgoing:
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name not in REQUEST_HEADERS_DROPPED and name != LEGACY_PIN[0]
    ]
    headers += _forwarded_headers(request)
    headers += extra_headers
    return Outgoing(request.method, _upstream_url(upstream, request), headers)


async def forward(
    request: Request,
    upstream: Upstream,
    proxy: Proxy,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> StreamingResponse:
    """Send the request on as it streams in; transport failures become JSON 502/504."""
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    outgoing = outgoing_request(request, upstream, extra_headers)
    try:
        answer = await proxy.send(outgoing, request.stream() if has_body else None)
    except aiohttp.ServerTimeoutError:
        raise UpstreamTimeout(f"{upstream.name} did not answer in time") from None
    except aiohttp.ClientError as error:
        raise UpstreamUnavailable(f"cannot reach {upstream.name}: {error}") from None
    return streamed(answer)


def streamed(
    answer: aiohttp.ClientResponse, extra_headers: Sequence[tuple[bytes, bytes]] = ()
) -> StreamingResponse:
    """The service's answer as it arrives; the connection is released when it ends."""

    async def release() -> None:
        answer.release()

    response = StreamingResponse(
        answer.content.iter_any(), status_code=answer.status, background=BackgroundTask(release)
    )
    # Raw pairs keep repeated headers (Set-Cookie) as the service sent them.
    response.raw_headers = [
        (name, value)
        for name, value in answer.raw_headers
        if name.decode("latin-1").lower() not in ANSWER_HEADERS_DROPPED
    ] + list(extra_headers)
    return response


def _upstream_url(upstream: Upstream, request: Request) -> URL:
    """The service's URL with the path exactly as the client sent it, still percent-encoded:
    decoding here would turn `%2e%2e/` into `../` before the service can refuse it."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    target = raw_path + (b"?" + query if query else b"")
    return URL(upstream.base_url + target.decode("latin-1"), encoded=True)


def _forwarded_headers(request: Request) -> list[tuple[str, str]]:
    client = request.client.host if request.client else "unknown"
    earlier = request.headers.get("x-forwarded-for")
    return [
        ("x-forwarded-for", f"{earlier}, {client}" if earlier else client),
        ("x-forwarded-proto", request.url.scheme),
        ("x-forwarded-host", request.headers.get("host", "")),
        ("x-request-id", request_id_of(request.scope)),
    ]
