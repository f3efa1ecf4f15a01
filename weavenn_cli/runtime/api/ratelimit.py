"""Requests per minute per client, counted in Redis (shared by replicas) or in process.

A moving window: a client never gets more than the limit in any 60 seconds, even across the
boundary of a clock minute. Each client's window holds the times of its last `limit`
requests; a request is allowed when that window is not full or its oldest time is more than
60 seconds old, and then takes the newest place.

In Redis a window is a list (newest first) updated by one script, so that replicas share it
atomically. The checks of requests arriving together go to Redis in one script call, one
window after the other in arrival order (each decided exactly as if it came alone): under
load a round trip serves many requests instead of one.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

WINDOW_SECONDS = 60
# One script call decides at most this many requests, to keep each call short in Redis.
MAX_BATCH = 256
# The in-process store forgets clients idle for a whole window, checked this often.
SWEEP_EVERY_SECONDS = 60.0

# KEYS: the window of each request, in arrival order. ARGV: now, limit, window seconds.
# Answers, per request: "" when allowed, else the time of the window's oldest request.
HIT_SCRIPT = """
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local answers = {}
for i, key in ipairs(KEYS) do
    local oldest = redis.call('lindex', key, limit - 1)
    if oldest and tonumber(oldest) >= now - window then
        answers[i] = oldest
    else
        redis.call('lpush', key, ARGV[1])
        redis.call('ltrim', key, 0, limit - 1)
        redis.call('expire', key, window)
        answers[i] = ''
    end
end
return answers
"""


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str | None, key_prefix: str) -> None:
        self.per_minute = per_minute
        self.windows: RedisWindows | LocalWindows = (
            RedisWindows(redis_url, f"{key_prefix}:ratelimit:", per_minute)
            if redis_url
            else LocalWindows(per_minute)
        )

    async def hit(self, identity: str) -> tuple[bool, int]:
        """(allowed, seconds to wait before the next request would be allowed)."""
        oldest = await self.windows.hit(identity, time.time())
        if oldest is None:
            return True, 0
        return False, max(1, math.ceil(oldest + WINDOW_SECONDS - time.time()))

    async def check(self) -> str:
        return await self.windows.check()


class LocalWindows:
    """The windows of this process's clients, in memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.windows: dict[str, deque[float]] = {}
        self.swept_at = time.monotonic()

    async def hit(self, identity: str, now: float) -> float | None:
        """None when allowed (and counted), else the time of the window's oldest request."""
        self._sweep(now)
        window = self.windows.get(identity)
        if window is None:
            window = self.windows[identity] = deque(maxlen=self.limit)
        if len(window) == self.limit and window[0] >= now - WINDOW_SECONDS:
            return window[0]
        window.append(now)
        return None

    async def check(self) -> str:
        return "in process"

    def _sweep(self, now: float) -> None:
        if time.monotonic() - self.swept_at < SWEEP_EVERY_SECONDS:
            return
        self.swept_at = time.monotonic()
        idle = [key for key, window in self.windows.items() if window[-1] < now - WINDOW_SECONDS]
        for key in idle:
            del self.windows[key]


class RedisWindows:
    """The windows in Redis, under `prefix` + client; requests waiting together go together."""

    def __init__(self, url: str, prefix: str, limit: int) -> None:
        from redis.asyncio import Redis

        self.client: Redis = Redis.from_url(url.removeprefix("async+"))
        self.script = self.client.register_script(HIT_SCRIPT)
        self.prefix = prefix
        self.limit = limit
        self.waiting: list[tuple[str, asyncio.Future[float | None]]] = []
        self.sender: asyncio.Task[None] | None = None

    async def hit(self, identity: str, now: float) -> float | None:
        """As `LocalWindows.hit`; `now` is when the request came, the batch uses its own."""
        future: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        self.waiting.append((self.prefix + identity, future))
        if self.sender is None:
            self.sender = asyncio.create_task(self._send())
        return await future

    async def check(self) -> str:
        try:
            await self.client.ping()
        except Exception as error:
            raise ConnectionError(
                f"the rate limit store (REDIS_URL) does not answer: {error}"
            ) from None
        return "redis"

    async def _send(self) -> None:
        """Until nobody waits: one script call for whoever is waiting, answers to each."""
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                try:
                    answers = await self.script(
                        keys=[key for key, _ in batch],
                        args=[repr(time.time()), self.limit, WINDOW_SECONDS],
                    )
                except Exception as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(float(answer) if answer else None)
        finally:
            self.sender = None
