"""API keys, rate limits (in process and shared through Redis), body size, request ids."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import Server, StartServer

pytestmark = pytest.mark.xdist_group("api-security")

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def guarded(module_server: StartServer, module_sqlite_url: str) -> Server:
    return module_server(
        "task-service",
        {
            "DATABASE_URL": module_sqlite_url,
            "API_KEY": "first-key, second-key,limit-key ,body-key",
            "RATE_LIMIT_PER_MINUTE": "5",
            "MAX_REQUEST_BYTES": "2048",
        },
    )


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"weavenn-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = subprocess.run(
        ["redis-cli", "--scan", "--pattern", f"{prefix}*"], capture_output=True, text=True
    ).stdout.split()
    if keys:
        subprocess.run(["redis-cli", "del", *keys], capture_output=True, check=True)


def test_probes_are_open_and_everything_else_needs_a_key(guarded: Server) -> None:
    with guarded.client() as api:
        for path in ("/health", "/ready", "/metrics"):
            assert api.get(path).status_code == 200, path
        for path in ("/v2/tasks", "/docs", "/openapi.json"):
            answer = api.get(path)
            assert answer.status_code == 401, path
            assert answer.json()["error"]["code"] == "UNAUTHORIZED"
            assert answer.headers["www-authenticate"] == "Bearer"
        wrong = api.get("/v2/tasks", headers={"Authorization": "Bearer first-ke"})
        assert wrong.status_code == 401
        empty = api.get("/v2/tasks", headers={"Authorization": "Bearer", "X-API-Key": ""})
        assert empty.status_code == 401


def test_either_key_works_in_either_header(guarded: Server) -> None:
    with guarded.client() as api:
        assert api.get("/v2/tasks", headers={"Authorization": "Bearer first-key"}).is_success
        assert api.get("/v2/tasks", headers={"X-API-Key": "second-key"}).is_success


def test_rate_limit_per_key_answers_429_with_retry_after(guarded: Server) -> None:
    with guarded.client(headers={"X-API-Key": "limit-key"}) as api:
        answers = [api.get("/v2/tasks") for _ in range(6)]
        assert [a.status_code for a in answers[:5]] == [200] * 5
        limited = answers[5]
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "RATE_LIMITED"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert api.get("/health").status_code == 200
    with guarded.client(headers={"X-API-Key": "second-key"}) as other:
        assert other.get("/v2/tasks").status_code == 200


def test_bodies_over_the_limit_are_refused(guarded: Server) -> None:
    headers = {"X-API-Key": "body-key", "Content-Type": "application/json"}
    big = b'{"title": "' + b"x" * 4096 + b'", "project_id": "p"}'
    with guarded.client(headers=headers) as api:
        declared = api.post("/v2/tasks", content=big)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

        def chunks() -> Iterator[bytes]:
            yield big[:1500]
            yield big[1500:]

        streamed = api.post("/v2/tasks", content=chunks())
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_request_id_is_echoed_and_carried_by_errors(guarded: Server) -> None:
    with guarded.client() as api:
        answer = api.get("/v2/tasks", headers={"X-Request-Id": "trace-123"})
        assert answer.headers["x-request-id"] == "trace-123"
        assert answer.json()["error"]["request_id"] == "trace-123"
        generated = api.get("/v2/tasks", headers={"X-Request-Id": "bad id with spaces"})
        assert generated.headers["x-request-id"] != "bad id with spaces"
        assert len(generated.headers["x-request-id"]) == 32


def test_rate_limit_in_process_counts_client_addresses(
    server: StartServer, sqlite_url: str, run_weavenn
) -> None:
    run_weavenn("migrate", "db", "--database-url", sqlite_url, check=True)
    started = server("task-service", {"DATABASE_URL": sqlite_url, "RATE_LIMIT_PER_MINUTE": "3"})
    with started.client() as api:
        assert [api.get("/v2/tasks").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_replicas_share_one_limit_through_redis(
    server: StartServer, sqlite_url: str, run_weavenn, redis_prefix: str
) -> None:
    run_weavenn("migrate", "db", "--database-url", sqlite_url, check=True)
    env = {
        "DATABASE_URL": sqlite_url,
        "RATE_LIMIT_PER_MINUTE": "6",
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": redis_prefix,
        "API_KEY": "shared-key",
    }
    first, second = server("task-service", env), server("task-service", env)
    headers = {"X-API-Key": "shared-key"}
    with first.client(headers=headers) as a, second.client(headers=headers) as b:
        statuses = [client.get("/v2/tasks").status_code for client in (a, b, a, b, a, b)]
        assert statuses == [200] * 6
        assert a.get("/v2/tasks").status_code == 429
        assert b.get("/v2/tasks").status_code == 429
        ready = a.get("/ready").json()
        assert ready["checks"]["redis"]["ok"] is True
    stored = subprocess.run(
        ["redis-cli", "--scan", "--pattern", f"{redis_prefix}*"], capture_output=True, text=True
    ).stdout
    assert stored.strip(), "no counters in Redis"
    assert "shared-key" not in stored


async def _busy_client(
    urls: list[str], headers: dict[str, str], total: int
) -> list[httpx.Response]:
    """`total` list requests, 40 at a time, spread over the replicas in turn."""
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        for start in range(0, total, 40):
            answers += await asyncio.gather(
                *(client.get(urls[n % len(urls)] + "/v2/tasks") for n in range(start, start + 40))
            )
    return answers


def test_busy_client_meets_the_limit_across_replicas(
    server: StartServer, sqlite_url: str, run_weavenn, redis_prefix: str
) -> None:
    """With leased slices (300 a minute: 3 per replica), 429s still come at the limit."""
    run_weavenn("migrate", "db", "--database-url", sqlite_url, check=True)
    env = {
        "DATABASE_URL": sqlite_url,
        "RATE_LIMIT_PER_MINUTE": "300",
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": redis_prefix,
        "API_KEY": "busy-key",
    }
    replicas = [server("task-service", env), server("task-service", env)]
    started = time.monotonic()
    answers = asyncio.run(
        _busy_client([r.url for r in replicas], {"X-API-Key": "busy-key"}, total=400)
    )
    elapsed = time.monotonic() - started
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) == {200, 429}
    assert 300 - 2 * 3 <= statuses.count(200) <= 300
    refused = [answer for answer in answers if answer.status_code == 429]
    # The window opened with the first request: what is left of it, give or take a second.
    earliest = 60 - int(elapsed) - 1
    assert all(earliest <= int(answer.headers["retry-after"]) <= 60 for answer in refused)
    # Both replicas served and refused: the limit is the shared one, not one per replica.
    for replica in replicas:
        mine = [a.status_code for a in answers if str(a.url).startswith(replica.url)]
        assert 200 in mine and 429 in mine
