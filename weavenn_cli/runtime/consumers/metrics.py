"""Prometheus metrics of a consumer runner (served with `weavenn consume --metrics-port`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server


class RunnerMetrics:
    """Counters of one runner, in a registry of their own (several runners per test process)."""

    def __init__(self, consumer: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["consumer"]

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, labels, registry=self.registry)

        self._processed = counter("weavenn_consumer_processed", "Messages whose effect committed.")
        self._duplicates = counter(
            "weavenn_consumer_duplicates", "Messages skipped: already in the consumer's inbox."
        )
        self._failed = counter("weavenn_consumer_failed", "Handler failures (retried or not).")
        self._retried = counter("weavenn_consumer_retried", "Messages sent back to wait a retry.")
        self._dead_lettered = counter(
            "weavenn_consumer_dead_lettered", "Messages given up on and moved to the dead letters."
        )
        self._latency = Histogram(
            "weavenn_consumer_handler_seconds",
            "Time a handler takes for one message (for a batch consumer: one batch).",
            labels,
            registry=self.registry,
        )
        self._consumer = consumer

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def processed(self, count: int = 1) -> None:
        self._processed.labels(self._consumer).inc(count)

    def duplicates(self, count: int = 1) -> None:
        self._duplicates.labels(self._consumer).inc(count)

    def failed(self) -> None:
        self._failed.labels(self._consumer).inc()

    def retried(self) -> None:
        self._retried.labels(self._consumer).inc()

    def dead_lettered(self) -> None:
        self._dead_lettered.labels(self._consumer).inc()

    def observe_latency(self, seconds: float) -> None:
        self._latency.labels(self._consumer).observe(seconds)

    def totals(self) -> dict[str, int]:
        """Counter values, for the summary printed when the runner stops."""
        names = ("processed", "duplicates", "failed", "retried", "dead_lettered")
        return {
            name: int(
                self.registry.get_sample_value(
                    f"weavenn_consumer_{name}_total", {"consumer": self._consumer}
                )
                or 0
            )
            for name in names
        }
