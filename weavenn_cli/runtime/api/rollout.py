"""Per-request routing of the extracted services' routes: new side or legacy side.

In `weavenn serve` (the monolith) the legacy side is the process's own routers; in
`weavenn serve gateway` it is the monolith behind MONOLITH_URL. The new side is the
service's URL. For each request on `/tasks`, `/v1/tasks`, `/v2/tasks`, `/files` or `/git`:

- the user (X-User-Id, else the API key's identity) is bucketed as `rollout/cohorts.py`
  says; no user, or a user outside the percentage: legacy side;
- new side: the request goes to the service, its answer streams back. When the service
  cannot be reached, the request is served by the legacy side. When it times out or answers
  5xx, safe methods (GET, HEAD, OPTIONS) are served by the legacy side too; other methods are
  not, since the service may have applied them: the client gets the failure. Every failure
  counts towards the circuit breaker;
- legacy side, shadow mode on, GET or HEAD: once the answer is sent, the same request goes to
  the new service in the background (a bounded queue; full means dropped and counted) and
  the two answers are compared;
- every answer says `X-Weavenn-Route: new|legacy` (and `X-Weavenn-Fallback: REASON`).

Percentages and shadow switches are re-read from the database every half second; counts go
to `/metrics` and, every second, to `rollout_stats` for `weavenn rollout` and guarded ramps.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from weavenn_cli.runtime.api import gateway
from weavenn_cli.runtime.api.metrics import RolloutMetrics
from weavenn_cli.runtime.api.middleware import request_id_of, send_problem
from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.problems import (
    PayloadTooLarge,
    Problem,
    UpstreamFailed,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from weavenn_cli.runtime.rollout.breaker import CircuitBreaker
from weavenn_cli.runtime.rollout.cohorts import SERVICES, Side, bucket_of_key, threshold, user_key
from weavenn_cli.runtime.rollout.compare import compare_answers
from weavenn_cli.runtime.rollout.stats import ShadowResult, StatsRecorder
from weavenn_cli.runtime.rollout.store import RolloutStore, starting_state

logger = logging.getLogger("weavenn.rollout")

ROUTE_HEADER = b"x-weavenn-route"
FALLBACK_HEADER = b"x-weavenn-fallback"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SHADOW_METHODS = frozenset({"GET", "HEAD"})
STATE_POLL_SECONDS = 0.5
STATS_FLUSH_SECONDS = 1.0
PRUNE_EVERY_SECONDS = 600.0
STATS_KEPT = timedelta(days=7)
USERS_KEPT = timedelta(days=30)
SHADOW_QUEUE_SIZE = 256
SHADOW_WORKERS = 4
SHADOW_TIMEOUT = aiohttp.ClientTimeout(total=10.0)
SHADOW_CAPTURE_BYTES = 1024 * 1024
MISMATCH_SAMPLE_SECONDS = 1.0
MAX_USER_ID_LENGTH = 256


@dataclass(frozen=True)
class Target:
    """An extracted service's route: which service, where it runs, the metrics label."""

    service: str
    upstream: gateway.Upstream
    endpoint: str


@dataclass(frozen=True)
class Attempt:
    """What sending a request to the new side gave: an answer, or a failure and whether the
    request may have reached the service (then it must not be replayed unless safe)."""

    answer: aiohttp.ClientResponse | None
    reason: str
    reached: bool
    problem: Problem | None


@dataclass(frozen=True)
class ShadowJob:
    service: str
    request: gateway.Outgoing
    target: str
    legacy_status: int
    legacy_body: bytes


def user_of(scope: Scope) -> str | None:
    """X-User-Id, else the identity of the API key (`apikey:` + 16 hex of its SHA-256)."""
    for name, value in scope.get("headers", []):
        if name == b"x-user-id":
            text = bytes(value).decode("latin-1").strip()
            if text:
                return text[:MAX_USER_ID_LENGTH]
    key = scope.get("state", {}).get("api_key")
    if key:
        return "apikey:" + hashlib.sha256(str(key).encode()).hexdigest()[:16]
    return None


class RolloutRouting:
    """The routing state of one process: percentages, breakers, counts, shadow queue."""

    def __init__(
        self,
        settings: Settings,
        proxy: gateway.Proxy,
        metrics: RolloutMetrics,
        *,
        honour_legacy_pin: bool,
    ) -> None:
        self.proxy = proxy
        self.metrics = metrics
        self.honour_legacy_pin = honour_legacy_pin
        self.routes = list(gateway.upstreams(settings).items())
        self.store = RolloutStore.open(settings.database_url, settings, pool_size=2)
        self.states = {service: starting_state(settings, service) for service in SERVICES}
        self.breakers = {
            service: CircuitBreaker(
                service,
                settings.rollout_breaker_failures,
                settings.rollout_breaker_cooldown_seconds,
            )
            for service in SERVICES
        }
        self.recorder = StatsRecorder()
        self.ignored_fields = settings.shadow_ignored_fields()
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.shadow_queue: asyncio.Queue[ShadowJob] = asyncio.Queue(SHADOW_QUEUE_SIZE)
        self._last_sample: dict[str, float] = {}
        self._trouble: set[str] = set()

    # -- per request --------------------------------------------------------------------

    def target(self, scope: Scope) -> Target | None:
        if self.honour_legacy_pin and _has_legacy_pin(scope):
            return None
        path: str = scope["path"]
        for prefix, upstream in self.routes:
            if path == prefix or path.startswith(prefix + "/"):
                endpoint = prefix if path == prefix else prefix + "/{rest:path}"
                return Target(upstream.name, upstream, endpoint)
        return None

    def decide(self, service: str, user: str | None) -> Side:
        if user is None:
            return "legacy"
        key = user_key(service, user)
        bucket = bucket_of_key(key)
        self.recorder.user(service, key, bucket)
        if bucket >= threshold(self.states[service].percent):
            return "legacy"
        return "new" if self.breakers[service].allows() else "legacy"

    def shadowing(self, service: str, method: str) -> bool:
        return self.states[service].shadow and method in SHADOW_METHODS

    def observe(self, service: str, side: Side, started: float, failed: bool) -> None:
        seconds = time.perf_counter() - started
        self.recorder.request(service, side, seconds * 1000, failed)
        self.metrics.request(service, side, seconds, failed)

    def fell_back(self, service: str, reason: str) -> None:
        self.recorder.fallback(service)
        self.metrics.fallbacks.labels(service, reason).inc()

    def submit_shadow(self, job: ShadowJob) -> None:
        """Queue a comparison; the user's answer has gone already and never waits for it."""
        try:
            self.shadow_queue.put_nowait(job)
        except asyncio.QueueFull:
            self._shadow_counted(job.service, "dropped")

    # -- background work ----------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Poll the percentages, flush the counts, compare shadows, while the app serves."""
        await self._seed()
        await self._refresh_states()
        loops = [self._every(STATE_POLL_SECONDS, self._refresh_states)]
        loops.append(self._every(STATS_FLUSH_SECONDS, self._flush_stats))
        loops.append(self._every(PRUNE_EVERY_SECONDS, self._prune))
        loops += [self._shadow_worker() for _ in range(SHADOW_WORKERS)]
        tasks = [asyncio.create_task(loop) for loop in loops]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task
            await self._flush_stats()
            self.store.close()

    @staticmethod
    async def _every(seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            await work()

    async def _seed(self) -> None:
        async with self._reporting("storing the starting rollout values"):
            for change in await asyncio.to_thread(self.store.seed_from_settings, self.instance):
                logger.info(
                    "%s: starting at %d %% (%s)",
                    change.after.service,
                    change.after.percent,
                    change.entry.reason if change.entry else "",
                )

    async def _refresh_states(self) -> None:
        async with self._reporting("reading the rollout percentages (routing as before)"):
            states = await asyncio.to_thread(self.store.states)
            for service, state in states.items():
                old = self.states[service]
                if (old.percent, old.shadow) != (state.percent, state.shadow):
                    shadow = "on" if state.shadow else "off"
                    logger.info("%s: %d %% new, shadow %s", service, state.percent, shadow)
                self.metrics.percentage.labels(service).set(state.percent)
                self.metrics.shadow_enabled.labels(service).set(1 if state.shadow else 0)
            self.states = states

    async def _flush_stats(self) -> None:
        for service, breaker in self.breakers.items():
            self.metrics.circuit_open.labels(service).set(1 if breaker.is_open else 0)
        window = self.recorder.take()
        if window.services:
            async with self._reporting("recording rollout counts (this window is lost)"):
                await asyncio.to_thread(self.store.record_window, self.instance, window)

    async def _prune(self) -> None:
        now = utcnow()
        async with self._reporting("pruning old rollout counts"):
            await asyncio.to_thread(self.store.prune, now - STATS_KEPT, now - USERS_KEPT)

    @asynccontextmanager
    async def _reporting(self, doing: str) -> AsyncIterator[None]:
        """Background work never stops serving; a failure is logged once, and its end."""
        try:
            yield
        except Exception as error:
            if doing not in self._trouble:
                self._trouble.add(doing)
                reason = getattr(error, "message", None) or str(error).splitlines()[0]
                logger.warning("%s failed: %s", doing, reason)
        else:
            if doing in self._trouble:
                self._trouble.discard(doing)
                logger.warning("%s works again", doing)

    async def _shadow_worker(self) -> None:
        while True:
            job = await self.shadow_queue.get()
            async with self._reporting("comparing shadow answers"):
                await self._compare(job)

    async def _compare(self, job: ShadowJob) -> None:
        try:
            answer = await self.proxy.send(job.request, timeout=SHADOW_TIMEOUT)
            async with answer:
                answered = (answer.status, await answer.read())
        except (aiohttp.ClientError, TimeoutError) as error:
            new: tuple[int | None, bytes] = (None, f"{type(error).__name__}: {error}".encode())
            differences = ["new side did not answer"]
            result: ShadowResult = "failed"
        else:
            new = answered
            legacy = (job.legacy_status, job.legacy_body)
            differences = compare_answers(legacy, answered, self.ignored_fields)
            result = "mismatch" if differences else "match"
        self._shadow_counted(job.service, result)
        if differences and self._sample_due(job.service):
            await asyncio.to_thread(
                self.store.record_mismatch,
                job.service,
                job.request.method,
                job.target,
                (job.legacy_status, job.legacy_body.decode("utf-8", "replace")),
                (new[0], new[1].decode("utf-8", "replace")),
                differences,
            )

    def _sample_due(self, service: str) -> bool:
        """At most one stored sample per service a second: counts tell the rate."""
        now = time.monotonic()
        last = self._last_sample.get(service)
        if last is not None and now - last < MISMATCH_SAMPLE_SECONDS:
            return False
        self._last_sample[service] = now
        return True

    def _shadow_counted(self, service: str, result: ShadowResult) -> None:
        self.recorder.shadow(service, result)
        self.metrics.shadow.labels(service, result).inc()


class RolloutMiddleware:
    """Decides, for the routes of extracted services, which side serves each request."""

    def __init__(self, app: ASGIApp, routing: RolloutRouting) -> None:
        self.app = app
        self.routing = routing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self.routing.target(scope) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["endpoint"] = target.endpoint
        if self.routing.decide(target.service, user_of(scope)) == "new":
            await self._new_side(target, scope, receive, send)
        else:
            shadow = self.routing.shadowing(target.service, scope["method"])
            await self._legacy_side(target, scope, receive, send, shadow=shadow)

    async def _new_side(self, target: Target, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            body = await _whole_body(receive)
        except HTTPException as error:  # the body limit, raised while reading
            await send_problem(send, PayloadTooLarge(str(error.detail)), request_id_of(scope))
            return
        attempt = await self._send_to_service(target, scope, body)
        breaker = self.routing.breakers[target.service]
        if attempt.answer is not None and attempt.problem is None:
            breaker.succeeded()
            await self._stream_back(target, attempt.answer, scope, receive, send, started)
            return
        breaker.failed(attempt.reason)
        self.routing.observe(target.service, "new", started, failed=True)
        if not attempt.reached or scope["method"] in SAFE_METHODS:
            if attempt.answer is not None:
                attempt.answer.release()
            self.routing.fell_back(target.service, attempt.reason)
            replay = _replaying(body, receive)
            await self._legacy_side(
                target, scope, replay, send, shadow=False, fallback=attempt.reason
            )
            return
        # The service may have applied this request: it is not sent to the legacy side too.
        if attempt.answer is not None:
            await gateway.streamed(attempt.answer, [(ROUTE_HEADER, b"new")])(scope, receive, send)
        elif attempt.problem is not None:
            headers = [(ROUTE_HEADER.decode(), "new")]
            await send_problem(send, attempt.problem, request_id_of(scope), headers)

    async def _send_to_service(self, target: Target, scope: Scope, body: bytes) -> Attempt:
        outgoing = gateway.outgoing_request(Request(scope), target.upstream)
        name = target.service
        try:
            answer = await self.routing.proxy.send(outgoing, body)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            return Attempt(
                None, "connect", False, UpstreamUnavailable(f"cannot reach {name}: {error}")
            )
        except aiohttp.ServerTimeoutError:
            return Attempt(None, "timeout", True, UpstreamTimeout(f"{name} did not answer in time"))
        except aiohttp.ClientError as error:
            return Attempt(None, "transport", True, UpstreamUnavailable(f"{name} failed: {error}"))
        if answer.status >= 500:
            failure = UpstreamFailed(f"{name} answered HTTP {answer.status}")
            return Attempt(answer, f"http-{answer.status}", True, failure)
        return Attempt(answer, "", True, None)

    async def _stream_back(
        self,
        target: Target,
        answer: aiohttp.ClientResponse,
        scope: Scope,
        receive: Receive,
        send: Send,
        started: float,
    ) -> None:
        failed = True
        try:
            await gateway.streamed(answer, [(ROUTE_HEADER, b"new")])(scope, receive, send)
            failed = False
        finally:
            self.routing.observe(target.service, "new", started, failed)

    async def _legacy_side(
        self,
        target: Target,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        shadow: bool,
        fallback: str | None = None,
    ) -> None:
        started = time.perf_counter()
        status = 500
        captured: bytearray | None = bytearray() if shadow else None
        extra = [(ROUTE_HEADER, b"legacy")]
        if fallback:
            extra.append((FALLBACK_HEADER, fallback.encode()))

        async def send_marked(message: Message) -> None:
            nonlocal status, captured
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            elif message["type"] == "http.response.body" and captured is not None:
                captured += message.get("body", b"")
                if len(captured) > SHADOW_CAPTURE_BYTES:
                    captured = None  # too large to compare; not shadowed
            await send(message)

        try:
            await self.app(scope, receive, send_marked)
        finally:
            self.routing.observe(target.service, "legacy", started, failed=status >= 500)
        if captured is not None:
            self.routing.submit_shadow(self._shadow_job(target, scope, status, bytes(captured)))

    def _shadow_job(self, target: Target, scope: Scope, status: int, body: bytes) -> ShadowJob:
        shadow_header = [("x-weavenn-shadow", "1")]
        outgoing = gateway.outgoing_request(Request(scope), target.upstream, shadow_header)
        query = scope.get("query_string", b"").decode("latin-1")
        shown = scope["path"] + (f"?{query}" if query else "")
        return ShadowJob(target.service, outgoing, shown, status, body)


def _has_legacy_pin(scope: Scope) -> bool:
    name, value = gateway.LEGACY_PIN
    return any(
        key == name.encode() and bytes(raw).decode("latin-1").strip().lower() == value
        for key, raw in scope.get("headers", [])
    )


async def _whole_body(receive: Receive) -> bytes:
    """The request body, which BodyLimitMiddleware has capped: kept to replay on fallback."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives the already-read body once, then the client's events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
