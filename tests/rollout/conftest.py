"""Real processes for rollout tests: the monolith on SQLite, the task service on PostgreSQL,
the gateway in front of both (sharing the monolith's database, where the rollout state is)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from tests.servers import Server, StartServer
from weavenn_cli.runtime.db.engine import make_engine
from weavenn_cli.runtime.db.models import Task
from weavenn_cli.runtime.rollout.cohorts import bucket, threshold

RunWeavenn = Callable[..., subprocess.CompletedProcess[str]]


@dataclass
class Stack:
    monolith: Server
    task_service: Server
    gateway: Server
    sqlite_url: str
    pg_url: str


# Tests send a few hundred requests a minute from one address.
UNLIMITED = {"RATE_LIMIT_PER_MINUTE": "1000000"}


def start_stack(start: StartServer, sqlite_url: str, pg_url: str, vault: Path, **env: str) -> Stack:
    task_service = start("task-service", {"DATABASE_URL": pg_url, **UNLIMITED})
    monolith = start(
        "all",
        {
            "DATABASE_URL": sqlite_url,
            "VAULT_PATH": str(vault),
            "TASK_SERVICE_URL": task_service.url,
            **UNLIMITED,
        },
    )
    gateway = start(
        "gateway",
        {
            "DATABASE_URL": sqlite_url,
            "MONOLITH_URL": monolith.url,
            "TASK_SERVICE_URL": task_service.url,
            "LOG_LEVEL": "INFO",
            **UNLIMITED,
            **env,
        },
    )
    return Stack(monolith, task_service, gateway, sqlite_url, pg_url)


@pytest.fixture(scope="module")
def stack(
    module_server: StartServer,
    module_sqlite_url: str,
    module_pg_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Stack:
    vault = tmp_path_factory.mktemp("vault")
    return start_stack(module_server, module_sqlite_url, module_pg_url, vault)


@pytest.fixture
def gateway_api(stack: Stack) -> Iterator[httpx.Client]:
    with stack.gateway.client() as client:
        yield client


@pytest.fixture
def rollout(
    run_weavenn: RunWeavenn, stack: Stack
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`weavenn rollout ...` on the stack's database; fails the test when it fails."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = run_weavenn("rollout", *args, env={"DATABASE_URL": stack.sqlite_url})
        assert result.returncode == 0, result.stderr
        return result

    return run


def route_of(api: httpx.Client, user: str, path: str = "/v2/tasks?limit=1") -> str:
    answer = api.get(path, headers={"X-User-Id": user})
    assert answer.status_code == 200, answer.text
    return answer.headers["x-weavenn-route"]


def users_near(service: str, percent: int) -> tuple[str | None, str | None]:
    """A user just inside the new side at `percent`, and one just outside (None at the ends)."""
    limit = threshold(percent)
    inside = outside = None
    for n in range(200_000):
        user = f"probe-{n}"
        b = bucket(service, user)
        if inside is None and limit - 100 <= b < limit:
            inside = user
        if outside is None and limit <= b < limit + 100:
            outside = user
        if (inside or percent == 0) and (outside or percent == 100):
            break
    return inside, outside


def wait_for_percent(api: httpx.Client, percent: int, timeout: float = 30) -> None:
    """Until the gateway routes the users next to the threshold as `percent` says."""
    inside, outside = users_near("task-service", percent)
    wait_until(
        lambda: (
            (inside is None or route_of(api, inside) == "new")
            and (outside is None or route_of(api, outside) == "legacy")
        ),
        timeout,
        f"the gateway never routed by {percent} %",
    )


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(what)
        time.sleep(0.05)


def metric(server: Server, name: str, **labels: str) -> float:
    """A sample of the server's /metrics (0 when absent)."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


def insert_task(url: str, **fields: object) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(Task), [fields])
    finally:
        engine.dispose()
