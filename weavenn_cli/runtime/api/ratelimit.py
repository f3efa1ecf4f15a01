"""Requests per minute per client, counted in Redis (shared by replicas) or in process.

A moving window: a client never gets more than the limit in any 60 seconds, even across the
boundary of a clock minute. Each client's window holds the times of its last `limit`
requests; a request is allowed when that window is not full or its oldest time is more than
60 seconds old, and then takes the newest place.

In Redis a window is a list (newest first) updated by one script, so that replicas share it
atomically. The checks of requests arriving together go to Redis in one script call, one
window after the other in arrival order (each decided exactly as if it came alone): under
load a round trip serves many requests instead of one.

A replica busy with one client also leases a slice of that client's limit: the script
counts a few requests more than are waiting (if the window has room), and the replica
spends them on the client's next requests without asking Redis, for at most
LEASE_SECONDS. The limit stays shared, within a slack of the slice per replica (1 % of
the limit, at most MAX_LEASE): permits are counted before they are used, so a client can
be refused while a replica holds a few of its counted permits unused (those expire within
LEASE_SECONDS), and a permit used up to LEASE_SECONDS after it was counted leaves the window
that much early, so any 60 s hold at most the limit plus one slice per replica. Clients
sending one request at a time, and limits under 100 a minute, get no lease: exact as before.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

WINDOW_SECONDS = 60
# One script call decides at most this many requests, to keep each call short in Redis.
MAX_BATCH = 256
# The in-process store forgets clients idle for a whole window, checked this often.
SWEEP_EVERY_SECONDS = 60.0

# A busy client's slice: this fraction of its limit, at most MAX_LEASE, spent in LEASE_SECONDS.
LEASE_FRACTION = 100
MAX_LEASE = 64
LEASE_SECONDS = 1.0

# KEYS: the window of each client, in order of its first waiting request. ARGV: now, limit,
# window seconds, then for each key how many requests it wants counted (waiting + lease).
# Answers, per key: how many were counted (the first ones asked), and when fewer than
# wanted, the time of the window's oldest request.
HIT_SCRIPT = """
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local answers = {}
for i, key in ipairs(KEYS) do
    local wanted, granted, oldest = tonumber(ARGV[3 + i]), 0, ''
    while granted < wanted do
        local last = redis.call('lindex', key, limit - 1)
        if last and tonumber(last) >= now - window then
            oldest = last
            break
        end
        redis.call('lpush', key, ARGV[1])
        redis.call('ltrim', key, 0, limit - 1)
        granted = granted + 1
    end
    if granted > 0 then
        redis.call('expire', key, window)
    end
    answers[2 * i - 1] = granted
    answers[2 * i] = oldest
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


@dataclass
class Lease:
    """Permits of one client counted in Redis ahead of use, spendable until `until`."""

    left: int
    until: float


@dataclass
class Waiting:
    """The requests of one client waiting for the next script call, in arrival order."""

    answers: list[asyncio.Future[float | None]] = field(default_factory=list)
    busy: bool = False


class RedisWindows:
    """The windows in Redis, under `prefix` + client; requests waiting together go together."""

    def __init__(self, url: str, prefix: str, limit: int) -> None:
        from redis.asyncio import Redis

        self.client: Redis = Redis.from_url(url.removeprefix("async+"))
        self.script = self.client.register_script(HIT_SCRIPT)
        self.prefix = prefix
        self.limit = limit
        self.slice = min(MAX_LEASE, limit // LEASE_FRACTION)
        self.leases: dict[str, Lease] = {}
        self.waiting: dict[str, Waiting] = {}
        self.sender: asyncio.Task[None] | None = None
        self.swept_at = time.monotonic()

    async def hit(self, identity: str, now: float) -> float | None:
        """As `LocalWindows.hit`; `now` is when the request came, the batch uses its own."""
        moment = time.monotonic()
        lease = self.leases.get(identity)
        if lease is not None and lease.left > 0 and moment < lease.until:
            lease.left -= 1
            return None
        waiting = self.waiting.get(identity)
        if waiting is None:
            waiting = self.waiting[identity] = Waiting()
        # A lease spent before it expired: this client is busy, the next one is worth taking.
        waiting.busy |= lease is not None and lease.left == 0 and moment < lease.until
        future: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        waiting.answers.append(future)
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
                batch = self._next_batch()
                wanted = [len(w.answers) + self._lease_wanted(w) for w in batch.values()]
                try:
                    answers = await self.script(
                        keys=[self.prefix + identity for identity in batch],
                        args=[repr(time.time()), self.limit, WINDOW_SECONDS, *wanted],
                    )
                except Exception as error:
                    for waiting in batch.values():
                        for future in waiting.answers:
                            if not future.done():
                                future.set_exception(error)
                    continue
                for index, (identity, waiting) in enumerate(batch.items()):
                    granted, oldest = int(answers[2 * index]), answers[2 * index + 1]
                    self._answer(identity, waiting, granted, float(oldest) if oldest else None)
            self._sweep()
        finally:
            self.sender = None

    def _next_batch(self) -> dict[str, Waiting]:
        """The clients waiting now, at most MAX_BATCH requests (a client is never split)."""
        batch: dict[str, Waiting] = {}
        counted = 0
        for identity in list(self.waiting):
            if batch and counted + len(self.waiting[identity].answers) > MAX_BATCH:
                break
            batch[identity] = self.waiting.pop(identity)
            counted += len(batch[identity].answers)
        return batch

    def _lease_wanted(self, waiting: Waiting) -> int:
        return self.slice if waiting.busy or len(waiting.answers) > 1 else 0

    def _answer(self, identity: str, waiting: Waiting, granted: int, oldest: float | None) -> None:
        """The first `granted` requests pass, in arrival order; what is left is leased."""
        for position, future in enumerate(waiting.answers):
            if not future.done():
                # Refused ones carry the window's oldest time (the script always sends it).
                future.set_result(None if position < granted else oldest or time.time())
        spare = granted - len(waiting.answers)
        if spare > 0:
            lease = self.leases.get(identity)
            moment = time.monotonic()
            kept = lease.left if lease is not None and moment < lease.until else 0
            self.leases[identity] = Lease(kept + spare, moment + LEASE_SECONDS)

    def _sweep(self) -> None:
        """Forget the leases of clients gone quiet (their unused permits expire unused)."""
        moment = time.monotonic()
        if moment - self.swept_at < SWEEP_EVERY_SECONDS:
            return
        self.swept_at = moment
        for identity in [i for i, lease in self.leases.items() if lease.until + 1 < moment]:
            del self.leases[identity]
