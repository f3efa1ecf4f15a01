"""What gateways saw, per service and side: requests, errors, fallbacks, latencies, shadows.

Each serving process counts in memory and writes one `rollout_stats` row per service every
second or so (see `api/rollout.py`); commands and guarded ramps add up the rows of every
process over a time range. Latencies are kept as counts per bucket, so the rows of several
processes add up and a p95 can be estimated over any range, the way Prometheus does.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.rollout.cohorts import Side

# Upper bounds of the latency buckets, in milliseconds; one more bucket holds the rest.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    1, 2, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750,
    1000, 1500, 2000, 3000, 5000, 10000, 30000,
)  # fmt: skip
# Enough to answer "how many recent users does a change move" without unbounded memory.
MAX_USERS_PER_WINDOW = 10_000

ShadowResult = Literal["match", "mismatch", "failed", "dropped"]


def empty_latency() -> list[int]:
    return [0] * (len(LATENCY_BOUNDS_MS) + 1)


@dataclass
class SideCounts:
    requests: int = 0
    errors: int = 0
    fallbacks: int = 0
    latency: list[int] = field(default_factory=empty_latency)

    def observe(self, milliseconds: float, failed: bool) -> None:
        self.requests += 1
        self.errors += failed
        self.latency[bisect_left(LATENCY_BOUNDS_MS, milliseconds)] += 1

    def add(self, requests: int, errors: int, fallbacks: int, latency: list[int]) -> None:
        self.requests += requests
        self.errors += errors
        self.fallbacks += fallbacks
        for index, count in enumerate(latency[: len(self.latency)]):
            self.latency[index] += int(count)


@dataclass
class ServiceWindow:
    legacy: SideCounts = field(default_factory=SideCounts)
    new: SideCounts = field(default_factory=SideCounts)
    shadow_compared: int = 0
    shadow_mismatched: int = 0
    shadow_dropped: int = 0
    users: dict[str, int] = field(default_factory=dict)

    def side(self, side: Side) -> SideCounts:
        return self.new if side == "new" else self.legacy

    def is_empty(self) -> bool:
        return not (
            self.legacy.requests or self.new.requests or self.new.fallbacks
            or self.shadow_compared or self.shadow_dropped or self.users
        )  # fmt: skip


@dataclass(frozen=True)
class Window:
    started_at: datetime
    ended_at: datetime
    services: dict[str, ServiceWindow]


class StatsRecorder:
    """This process's counts since the last `take()`. Called from the event loop only."""

    def __init__(self) -> None:
        self._services: dict[str, ServiceWindow] = {}
        self._started_at = utcnow()

    def _window(self, service: str) -> ServiceWindow:
        return self._services.setdefault(service, ServiceWindow())

    def request(self, service: str, side: Side, milliseconds: float, failed: bool) -> None:
        self._window(service).side(side).observe(milliseconds, failed)

    def fallback(self, service: str) -> None:
        self._window(service).new.fallbacks += 1

    def shadow(self, service: str, result: ShadowResult) -> None:
        window = self._window(service)
        if result == "dropped":
            window.shadow_dropped += 1
            return
        window.shadow_compared += 1
        window.shadow_mismatched += result != "match"

    def user(self, service: str, key: str, bucket: int) -> None:
        users = self._window(service).users
        if len(users) < MAX_USERS_PER_WINDOW:
            users[key] = bucket

    def take(self) -> Window:
        """The counts so far; counting starts again from zero."""
        now = utcnow()
        services = {name: w for name, w in self._services.items() if not w.is_empty()}
        window = Window(self._started_at, now, services)
        self._services = {}
        self._started_at = now
        return window


@dataclass(frozen=True)
class SideSummary:
    requests: int
    errors: int
    fallbacks: int
    p95_ms: float | None

    @property
    def error_rate(self) -> float:
        """Errors as a percentage of requests (0 without requests)."""
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    @classmethod
    def of(cls, counts: SideCounts) -> SideSummary:
        return cls(counts.requests, counts.errors, counts.fallbacks, quantile_ms(counts.latency))


@dataclass(frozen=True)
class Traffic:
    """Every process's counts for one service since `since`."""

    since: datetime
    instances: int
    legacy: SideSummary
    new: SideSummary
    shadow_compared: int
    shadow_mismatched: int
    shadow_dropped: int


def quantile_ms(latency: list[int], quantile: float = 0.95) -> float | None:
    """Estimate a latency quantile from bucket counts, linear within the bucket."""
    total = sum(latency)
    if total == 0:
        return None
    rank = quantile * total
    seen = 0
    for index, count in enumerate(latency):
        if count and seen + count >= rank:
            if index == len(LATENCY_BOUNDS_MS):
                return LATENCY_BOUNDS_MS[-1]
            lower = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
            upper = LATENCY_BOUNDS_MS[index]
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return LATENCY_BOUNDS_MS[-1]
