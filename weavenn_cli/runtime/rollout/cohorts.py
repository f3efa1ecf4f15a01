"""Who is on the new side: a stable hash of service and user id, the same in every process.

    bucket(service, user_id) = first 8 bytes of SHA-256("{service}:{user_id}" in UTF-8),
                               read as an unsigned big-endian integer, modulo 10000
    new side  <=>  bucket < percent * 100

Buckets below the threshold stay below it when the percentage rises (a user moved at 10 %
stays moved at 25 %), and the service name in the hash gives each service its own cohort.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from weavenn_cli.runtime.errors import UsageError

Side = Literal["legacy", "new"]
SERVICES: tuple[str, ...] = ("task-service", "file-service", "git-service")
BUCKETS = 10_000
BUCKETS_PER_PERCENT = BUCKETS // 100


def user_key(service: str, user_id: str) -> str:
    """SHA-256 of "service:user_id", hex: what the bucket is taken from, and what is stored."""
    return hashlib.sha256(f"{service}:{user_id}".encode()).hexdigest()


def bucket_of_key(key: str) -> int:
    return int(key[:16], 16) % BUCKETS


def bucket(service: str, user_id: str) -> int:
    return bucket_of_key(user_key(service, user_id))


def threshold(percent: int) -> int:
    """Buckets [0, threshold) are on the new side."""
    return percent * BUCKETS_PER_PERCENT


def side_of(service: str, user_id: str | None, percent: int) -> Side:
    """Requests without a user id stay on the legacy side, whatever the percentage."""
    if user_id is None or bucket(service, user_id) >= threshold(percent):
        return "legacy"
    return "new"


def check_service(name: str) -> str:
    if name not in SERVICES:
        raise UsageError(f"unknown service {name!r}: choose one of {', '.join(SERVICES)}")
    return name


def parse_percent(text: str) -> int:
    """An integer from 0 to 100, written as such; anything else is bad usage."""
    cleaned = text.strip()
    if not re.fullmatch(r"\d{1,3}", cleaned) or int(cleaned) > 100:
        raise UsageError(f"percentage must be a whole number from 0 to 100, not {text!r}")
    return int(cleaned)
