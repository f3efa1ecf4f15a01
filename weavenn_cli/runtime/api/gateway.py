"""The API gateway: routes by path prefix to the extracted services, as a streaming proxy.

Authentication and rate limiting are the app's middlewares; this module only forwards.
Method, path, query, headers and body reach the service unchanged (hop-by-hop headers
aside), and the answer streams back as it arrives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
    task = Upstream("task-service", settings.task_service_url.rstrip("/"))
    file = Upstream("file-service", settings.file_service_url.rstrip("/"))
    git = Upstream("git-service", settings.git_service_url.rstrip("/"))
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


def gateway_router(routes: dict[str, Upstream], client: httpx.AsyncClient) -> APIRouter:
    router = APIRouter()
    for prefix, upstream in routes.items():
        proxy = _proxy_to(upstream, client)
        router.add_api_route(prefix, proxy, methods=METHODS, include_in_schema=False)
        router.add_api_route(
            prefix + "/{rest:path}", proxy, methods=METHODS, include_in_schema=False
        )
    return router


def _proxy_to(
    upstream: Upstream, client: httpx.AsyncClient
) -> Callable[[Request], Awaitable[StreamingResponse]]:
    async def proxy(request: Request) -> StreamingResponse:
        return await forward(request, upstream, client)

    return proxy


async def forward(
    request: Request, upstream: Upstream, client: httpx.AsyncClient
) -> StreamingResponse:
    url = _upstream_url(upstream, request)
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name not in REQUEST_HEADERS_DROPPED
    ]
    headers += _forwarded_headers(request)
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    outgoing = client.build_request(
        request.method, url, headers=headers, content=request.stream() if has_body else None
    )
    try:
        answer = await client.send(outgoing, stream=True)
    except httpx.TimeoutException:
        raise UpstreamTimeout(f"{upstream.name} did not answer in time") from None
    except httpx.TransportError as error:
        raise UpstreamUnavailable(f"cannot reach {upstream.name}: {error}") from None
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
    ]
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
