"""Prometheus metrics of HTTP requests, labelled by service, method, route template and status.

With several uvicorn workers, PROMETHEUS_MULTIPROC_DIR is set by `weavenn serve` and every
worker writes its samples there; `/metrics` then adds up all workers.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "<unmatched>"
LABELS = ("service", "method", "endpoint", "status")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "weavenn_http_requests",
            "HTTP requests answered",
            LABELS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "weavenn_http_request_duration_seconds",
            "Time to answer an HTTP request",
            LABELS,
            buckets=BUCKETS,
            registry=self.registry,
        )
        # The series of each label set, looked up once: `labels()` costs more than counting.
        self.series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        key = (method, endpoint, status)
        series = self.series.get(key)
        if series is None:
            labels = (self.service, method, endpoint, str(status))
            series = self.series[key] = (
                self.requests.labels(*labels),
                self.latency.labels(*labels),
            )
        series[0].inc()
        series[1].observe(seconds)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


class RolloutMetrics:
    """Routing of extracted services' routes: per side, fallbacks, shadow comparisons."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "weavenn_rollout_requests",
            "Requests on an extracted service's routes, by the side that served them",
            ("service", "side", "outcome"),
            registry=registry,
        )
        self.latency = Histogram(
            "weavenn_rollout_request_duration_seconds",
            "Time to answer a request on an extracted service's routes, by side",
            ("service", "side"),
            buckets=BUCKETS,
            registry=registry,
        )
        self.fallbacks = Counter(
            "weavenn_rollout_fallbacks",
            "Requests the legacy side served because the new side failed",
            ("service", "reason"),
            registry=registry,
        )
        self.shadow = Counter(
            "weavenn_rollout_shadow_comparisons",
            "Shadow comparisons of legacy answers with the new side's (match, mismatch, "
            "failed, dropped when the queue was full)",
            ("service", "result"),
            registry=registry,
        )
        self.percentage = Gauge(
            "weavenn_rollout_percentage",
            "Share of users this process sends to the new side",
            ("service",),
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.shadow_enabled = Gauge(
            "weavenn_rollout_shadow_enabled",
            "1 while this process compares legacy answers with the new side's",
            ("service",),
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.circuit_open = Gauge(
            "weavenn_rollout_circuit_open",
            "1 while the circuit breaker keeps everyone on the legacy side",
            ("service",),
            registry=registry,
            multiprocess_mode="livemax",
        )

    def request(self, service: str, side: str, seconds: float, failed: bool) -> None:
        self.requests.labels(service, side, "error" if failed else "ok").inc()
        self.latency.labels(service, side).observe(seconds)


class MetricsMiddleware:
    """Times every request; the endpoint label is the route template, never the raw path."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            self.metrics.observe(
                scope["method"], _endpoint(scope), status, time.perf_counter() - started
            )


def _endpoint(scope: Scope) -> str:
    """The route template; requests proxied before routing carry theirs in the state."""
    route = scope.get("route")
    path = getattr(route, "path", None) or scope.get("state", {}).get("endpoint")
    return str(path) if path else UNMATCHED
