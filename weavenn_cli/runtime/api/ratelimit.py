"""Requests per minute per client, counted in Redis (shared by replicas) or in process.

The `limits` library does the counting with a moving window: a client never gets more than
the limit in any 60 seconds, even across the boundary of a clock minute.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str | None, key_prefix: str) -> None:
        self.per_minute = per_minute
        self.item = RateLimitItemPerMinute(per_minute)
        self.storage: Storage
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            self.storage = RedisStorage(
                uri, implementation="redispy", key_prefix=f"{key_prefix}:ratelimit"
            )
        else:
            self.storage = MemoryStorage()
        self.strategy = MovingWindowRateLimiter(self.storage)

    async def hit(self, identity: str) -> tuple[bool, int]:
        """(allowed, seconds to wait before the next request would be allowed)."""
        if await self.strategy.hit(self.item, identity):
            return True, 0
        stats = await self.strategy.get_window_stats(self.item, identity)
        return False, max(1, math.ceil(stats.reset_time - time.time()))

    async def check(self) -> str:
        if not await self.storage.check():
            raise ConnectionError("the rate limit store (REDIS_URL) does not answer")
        return "redis" if isinstance(self.storage, RedisStorage) else "in process"
