"""The rate limiter's moving window, in process and in the local Redis, under concurrency."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import pytest

from weavenn_cli.runtime.api.ratelimit import RateLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _burst(limiter: RateLimiter, identities: list[str]) -> list[tuple[bool, int]]:
    """All hits at once, as concurrent requests: the Redis store sends them in batches."""
    return await asyncio.gather(*(limiter.hit(identity) for identity in identities))


@pytest.fixture(params=["in process", "redis"])
def limiter(request: pytest.FixtureRequest) -> RateLimiter:
    if request.param == "in process":
        return RateLimiter(5, None, "unused")
    prefix = f"weavenn-test-{uuid.uuid4().hex[:12]}"
    request.addfinalizer(lambda: _delete_keys(prefix))
    return RateLimiter(5, REDIS_URL, prefix)


def _delete_keys(prefix: str) -> None:
    keys = subprocess.run(
        ["redis-cli", "--scan", "--pattern", f"{prefix}*"], capture_output=True, text=True
    ).stdout.split()
    if keys:
        subprocess.run(["redis-cli", "del", *keys], capture_output=True, check=True)


def test_concurrent_requests_get_exactly_the_limit(limiter: RateLimiter) -> None:
    answers = asyncio.run(_burst(limiter, ["a"] * 12 + ["b"] * 3))
    allowed_a = [allowed for allowed, _ in answers[:12]]
    # Decided in arrival order: the first five pass, every later one waits a whole window.
    assert allowed_a == [True] * 5 + [False] * 7
    assert all(55 <= wait <= 60 for _, wait in answers[5:12])
    assert [allowed for allowed, _ in answers[12:]] == [True] * 3


def test_a_later_burst_still_counts_the_earlier_one(limiter: RateLimiter) -> None:
    async def two_bursts() -> tuple[list[tuple[bool, int]], list[tuple[bool, int]]]:
        first = await _burst(limiter, ["c"] * 3)
        return first, await _burst(limiter, ["c"] * 3)

    first, second = asyncio.run(two_bursts())
    assert [allowed for allowed, _ in first + second] == [True] * 5 + [False]


def test_readiness_names_the_store(limiter: RateLimiter) -> None:
    assert asyncio.run(limiter.check()) in ("in process", "redis")


async def _two_busy_replicas(prefix: str) -> tuple[list[tuple[bool, int]], int, int]:
    """Two replicas (one limiter each) serve one busy client in turns, bursts of 50."""
    first, second = RateLimiter(1000, REDIS_URL, prefix), RateLimiter(1000, REDIS_URL, prefix)
    answers = await _burst(first, ["busy"] * 50)
    # The burst was counted with a slice more, which the replica keeps for the next ones.
    first_lease = first.windows.leases["busy"].left  # type: ignore[union-attr]
    counted_after_first = int(
        subprocess.run(
            ["redis-cli", "llen", f"{prefix}:ratelimit:busy"], capture_output=True, text=True
        ).stdout
    )
    for _ in range(12):
        answers += await _burst(second, ["busy"] * 50)
        answers += await _burst(first, ["busy"] * 50)
    return answers, first_lease, counted_after_first - 50


def test_replicas_leasing_slices_still_share_one_limit() -> None:
    prefix = f"weavenn-test-{uuid.uuid4().hex[:12]}"
    try:
        answers, lease, counted_ahead = asyncio.run(_two_busy_replicas(prefix))
    finally:
        _delete_keys(prefix)
    assert lease == counted_ahead == 10  # 1 % of the limit
    allowed = sum(allowed for allowed, _ in answers)
    # Never more than the limit; fewer by at most the slice each replica may hold unused.
    assert 1000 - 2 * 10 <= allowed <= 1000
    assert all(55 <= wait <= 60 for allowed, wait in answers if not allowed)
    assert not answers[-1][0]
