"""The gateway's proxying: requests go to another process, answers stream back.

`weavenn serve gateway` is the strangler fig's façade. The routes of extracted services are
decided per user by the rollout middleware (`api/rollout.py`): the new side is the service,
the legacy side the monolith (MONOLITH_URL), where every other path goes too. Method, path,
query, headers and body reach the other process unchanged (hop-by-hop headers aside), and the
answer streams back as it arrives. Authentication and rate limiting are the app's middlewares.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httpx
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

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


@dataclass(frozen=True)
class Upstream:
    name: str
    base_url: str


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


def proxy_client(settings: Settings) -> httpx.AsyncClient:
    timeout = httpx.Timeout(settings.upstream_timeout_seconds, connect=5.0)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    return httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False)


def monolith(settings: Settings) -> Upstream:
    return Upstream("monolith", settings.monolith_url.rstrip("/"))


# Tells the monolith the gateway already decided: serve it here, do not route it again.
LEGACY_PIN = ("x-weavenn-route", "legacy")


def monolith_router(upstream: Upstream, client: httpx.AsyncClient) -> APIRouter:
    """Every path the gateway does not answer itself goes to the monolith, as legacy."""

    async def to_monolith(request: Request) -> StreamingResponse:
        return await forward(request, upstream, client, [LEGACY_PIN])

    router = APIRouter()
    router.add_api_route("/{rest:path}", to_monolith, methods=METHODS, include_in_schema=False)
    return router


def outgoing_request(
    client: httpx.AsyncClient,
    request: Request,
    upstream: Upstream,
    content: bytes | AsyncIterator[bytes] | None,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> httpx.Request:
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name not in REQUEST_HEADERS_DROPPED and name != LEGACY_PIN[0]
    ]
    headers += _forwarded_headers(request)
    headers += extra_headers
    return client.build_request(
        request.method, _upstream_url(upstream, request), headers=headers, content=content
    )


async def forward(
    request: Request,
    upstream: Upstream,
    client: httpx.AsyncClient,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> StreamingResponse:
    """Send the request on as it streams in; transport failures become JSON 502/504."""
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    content = request.stream() if has_body else None
    outgoing = outgoing_request(client, request, upstream, content, extra_headers)
    try:
        answer = await client.send(outgoing, stream=True)
    except httpx.TimeoutException:
        raise UpstreamTimeout(f"{upstream.name} did not answer in time") from None
    except httpx.TransportError as error:
        raise UpstreamUnavailable(f"cannot reach {upstream.name}: {error}") from None
    return streamed(answer)


def streamed(
    answer: httpx.Response, extra_headers: Sequence[tuple[bytes, bytes]] = ()
) -> StreamingResponse:
    """The service's answer as it arrives; the connection is released when it ends."""
    response = StreamingResponse(
        answer.aiter_raw(),
        status_code=answer.status_code,
        background=BackgroundTask(answer.aclose),
    )
    # Raw pairs keep repeated headers (Set-Cookie) as the service sent them.
    response.raw_headers = [
        (name, value)
        for name, value in answer.headers.raw
        if name.decode("latin-1").lower() not in ANSWER_HEADERS_DROPPED
    ] + list(extra_headers)
    return response


def _upstream_url(upstream: Upstream, request: Request) -> httpx.URL:
    """The service's URL with the path exactly as the client sent it, still percent-encoded:
    decoding here would turn `%2e%2e/` into `../` before the service can refuse it."""
    base = httpx.URL(upstream.base_url)
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    target = base.raw_path.rstrip(b"/") + raw_path + (b"?" + query if query else b"")
    return base.copy_with(raw_path=target)


def _forwarded_headers(request: Request) -> list[tuple[str, str]]:
    client = request.client.host if request.client else "unknown"
    earlier = request.headers.get("x-forwarded-for")
    return [
        ("x-forwarded-for", f"{earlier}, {client}" if earlier else client),
        ("x-forwarded-proto", request.url.scheme),
        ("x-forwarded-host", request.headers.get("host", "")),
        ("x-request-id", request_id_of(request.scope)),
    ]
