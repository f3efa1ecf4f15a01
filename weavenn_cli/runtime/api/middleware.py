"""Request id, error answers, body size limit, API keys and rate limits, as ASGI middlewares."""

from __future__ import annotations

import functools
import hmac
import json
import logging
import os
import re
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from weavenn_cli.runtime.api.ratelimit import RateLimiter
from weavenn_cli.runtime.problems import (
    InternalError,
    PayloadTooLarge,
    Problem,
    RateLimited,
    Unauthorized,
)

logger = logging.getLogger("weavenn.api")

OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})
REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    return str(scope.get("state", {}).get("request_id", ""))


async def send_problem(
    send: Send, problem: Problem, request_id: str, headers: Sequence[tuple[str, str]] = ()
) -> None:
    body = json.dumps(problem.body(request_id)).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER.encode(), request_id.encode()),
        *((name.encode(), value.encode()) for name, value in headers),
    ]
    await send({"type": "http.response.start", "status": problem.status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Gives every request an id (kept from X-Request-Id when sane) and echoes it back.

    Anything that escapes the application is logged with that id and answered as a JSON
    INTERNAL_ERROR carrying it: a client never sees a traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # 128 random bits in hex, as uuid4().hex reads, without building a UUID object.
        request_id = _incoming_request_id(scope) or os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [h for h in message.get("headers", []) if h[0] != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception(
                "request %s %s failed (request id %s)", scope["method"], scope["path"], request_id
            )
            if started:
                raise
            problem = InternalError(
                "unexpected error; the server log has the details under this request id"
            )
            await send_problem(send, problem, request_id)


class BodyLimitMiddleware:
    """413 for bodies over the limit, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_problem(send, self._problem(), request_id_of(scope))
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes through FastAPI's body parsing untouched and
                    # reaches the app's handler, which answers PAYLOAD_TOO_LARGE.
                    raise HTTPException(413, self._problem().message)
            return message

        await self.app(scope, counting_receive, send)

    def _problem(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body is larger than {self.max_bytes} bytes")


class AuthMiddleware:
    """With API keys configured, every path but the probes needs one of them.

    Accepted as `Authorization: Bearer KEY` or `X-API-Key: KEY`; compared in constant time
    against every key, so the answer time says nothing about which key was close.
    """

    def __init__(self, app: ASGIApp, keys: Sequence[str]) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        presented = _presented_key(scope)
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(presented, key)
        if not matched:
            problem = Unauthorized(
                "missing or wrong API key: send `Authorization: Bearer KEY` or `X-API-Key: KEY`"
            )
            await send_problem(
                send, problem, request_id_of(scope), [("www-authenticate", "Bearer")]
            )
            return
        scope["state"]["api_key"] = presented.decode()
        await self.app(scope, receive, send)


class RateLimitMiddleware:
    """RATE_LIMIT_PER_MINUTE per API key (or per client address without one); 429 beyond."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        identity = _identity(scope)
        allowed, retry_after = await self.limiter.hit(identity)
        if not allowed:
            problem = RateLimited(
                f"more than {self.limiter.per_minute} requests a minute; retry in {retry_after} s"
            )
            await send_problem(
                send, problem, request_id_of(scope), [("retry-after", str(retry_after))]
            )
            return
        await self.app(scope, receive, send)


def _identity(scope: Scope) -> str:
    key = scope.get("state", {}).get("api_key")
    if key:
        return _key_identity(key)
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


@functools.lru_cache(maxsize=64)
def _key_identity(key: str) -> str:
    """The rate limit's name for an API key; the key itself never becomes a Redis key name.
    Kept per key (only configured keys get this far): an HMAC per request was 3 % of a list's
    CPU."""
    return "key:" + hmac.new(b"weavenn-rate-limit", key.encode(), "sha256").hexdigest()[:32]


def _presented_key(scope: Scope) -> bytes:
    authorization = _header(scope, b"authorization") or ""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip().encode()
    return (_header(scope, b"x-api-key") or "").strip().encode()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _incoming_request_id(scope: Scope) -> str | None:
    value = _header(scope, REQUEST_ID_HEADER.encode())
    return value if value and _VALID_REQUEST_ID.match(value) else None
