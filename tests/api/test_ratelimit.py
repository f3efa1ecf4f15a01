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
