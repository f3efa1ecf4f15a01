"""The new side failing: killed, its database gone, in the middle of a guarded ramp."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.rollout.conftest import Stack, metric, start_stack, wait_until
from tests.servers import StartServer
from tests.support import drop_pg_database
from weavenn_cli.runtime.api.rollout import SHADOW_QUEUE_SIZE, SHADOW_WORKERS
from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.db.engine import make_engine
from weavenn_cli.runtime.rollout.store import RolloutStore

pytestmark = pytest.mark.xdist_group("rollout-faults")

RunWeavenn = Callable[..., subprocess.CompletedProcess[str]]
EVERYONE_NEW = {"TASK_SERVICE_ROLLOUT_PERCENTAGE": "100", "ROLLOUT_BREAKER_FAILURES": "3"}


@pytest.fixture
def own_stack(
    server: StartServer, migrated_sqlite_url: str, migrated_pg_url: str, tmp_path: Path
) -> Stack:
    return start_stack(server, migrated_sqlite_url, migrated_pg_url, tmp_path, **EVERYONE_NEW)


def titles_in(url: str, title: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            query = text("SELECT count(*) FROM tasks WHERE title = :title")
            return int(connection.execute(query, {"title": title}).scalar_one())
    finally:
        engine.dispose()


def test_killed_service_requests_succeed_through_legacy_and_the_circuit_opens(
    own_stack: Stack,
) -> None:
    own_stack.task_service.stop(signal.SIGKILL)
    with own_stack.gateway.client() as api:
        answers = [api.get("/v2/tasks", headers={"X-User-Id": f"user-{n}"}) for n in range(6)]
        title = f"written while the service is down {uuid.uuid4().hex[:6]}"
        created = api.post(
            "/v2/tasks", json={"title": title, "project_id": "p"}, headers={"X-User-Id": "w"}
        )
    assert [a.status_code for a in answers] == [200] * 6
    assert {a.headers["x-weavenn-route"] for a in answers} == {"legacy"}
    # Three connection failures open the circuit; after that nobody tries the new side.
    assert [a.headers.get("x-weavenn-fallback") for a in answers] == ["connect"] * 3 + [None] * 3
    # Refused connections never reached the service: even a write is served by legacy.
    assert created.status_code == 201 and created.headers["x-weavenn-route"] == "legacy"
    assert titles_in(own_stack.sqlite_url, title) == 1
    gateway = own_stack.gateway
    assert metric(gateway, "weavenn_rollout_fallbacks_total", reason="connect") == 3
    wait_until(
        lambda: metric(gateway, "weavenn_rollout_circuit_open", service="task-service") == 1,
        30,
        "the circuit never showed as open",
    )
    assert "task-service: circuit open after 3 failures in a row" in gateway.output()


def test_a_write_that_reached_a_failing_service_is_not_applied_twice(
    own_stack: Stack, migrated_pg_url: str
) -> None:
    drop_pg_database(migrated_pg_url.rsplit("/", 1)[1])  # the service answers 503 now
    title = f"not twice {uuid.uuid4().hex[:6]}"
    with own_stack.gateway.client() as api:
        write = api.post(
            "/v2/tasks", json={"title": title, "project_id": "p"}, headers={"X-User-Id": "w"}
        )
        read = api.get("/v2/tasks", headers={"X-User-Id": "r"})
    assert write.status_code == 503
    assert write.headers["x-weavenn-route"] == "new"
    assert write.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert titles_in(own_stack.sqlite_url, title) == 0
    assert read.status_code == 200
    assert read.headers["x-weavenn-route"] == "legacy"
    assert read.headers["x-weavenn-fallback"] == "http-503"


class Load:
    """Requests from many users through the gateway until stopped: (sent at, status or 0)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stopped = threading.Event()
        self.answers: list[tuple[float, int]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            n = 0
            while not self.stopped.is_set():
                n += 1
                sent = time.monotonic()
                try:
                    answer = client.get("/v2/tasks?limit=5", headers={"X-User-Id": f"load-{n}"})
                    self.answers.append((sent, answer.status_code))
                except httpx.HTTPError:
                    self.answers.append((sent, 0))
                time.sleep(0.02)

    def statuses_after(self, moment: float) -> set[int]:
        return {status for sent, status in self.answers if sent > moment}

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(30)


def test_guarded_ramp_resets_to_zero_when_the_new_side_starts_failing(
    own_stack: Stack, weavenn_bin: Path, run_weavenn: RunWeavenn
) -> None:
    env = {"DATABASE_URL": own_stack.sqlite_url, "TASK_SERVICE_URL": own_stack.task_service.url}
    run_weavenn("rollout", "task-service", "0", env=env, check=True)
    ramp = [
        str(weavenn_bin),
        "rollout",
        "task-service",
        "--plan",
        "20,60,100",
        "--step-interval",
        "6s",
        "--max-error-rate",
        "5",
        "--max-p95-ms",
        "60000",
        "--reason",
        "canary",
    ]
    with Load(own_stack.gateway.url) as load, started(ramp, env) as process:
        wait_until(lambda: _percent(env) == 20, 60, "the ramp never took step 1")
        own_stack.task_service.stop(signal.SIGKILL)
        killed = time.monotonic()
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert "guarded ramp aborted at" in err and "set back to 0 %" in err
    assert _percent(env) == 0
    latest = json.loads(
        run_weavenn("rollout", "task-service", "--history", "--json", env=env).stdout
    )[0]
    assert latest["new_percent"] == 0 and latest["reason"].startswith("guarded ramp aborted at")
    # Users sent after the kill never noticed: legacy served them. (One in flight at that
    # moment may be cut: an answer already streaming cannot be served again.)
    assert load.statuses_after(killed) == {200}


def test_ctrl_c_leaves_the_percentage_where_it_is(
    migrated_sqlite_url: str, weavenn_bin: Path, run_weavenn: RunWeavenn
) -> None:
    env = {"DATABASE_URL": migrated_sqlite_url}
    ramp = [str(weavenn_bin), "rollout", "file-service", "--plan", "30,60", "--step-interval", "1h"]
    with started(ramp, env) as process:
        wait_until(lambda: _percent(env, "file-service") == 30, 60, "step 1 never happened")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "interrupted: file-service stays at 30 %" in err
    assert _percent(env, "file-service") == 30


@contextmanager
def started(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A `weavenn` process of the test's; killed if the test ends before it does."""
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def _percent(env: dict[str, str], service: str = "task-service") -> int:
    """What the database says, read here: quicker to poll than a command."""
    store = RolloutStore.open(env["DATABASE_URL"], load_settings())
    try:
        return store.state(service).percent
    finally:
        store.close()


def test_users_never_wait_for_shadow_calls_and_a_full_queue_drops(
    own_stack: Stack, run_weavenn: RunWeavenn
) -> None:
    env = {"DATABASE_URL": own_stack.sqlite_url}
    run_weavenn("rollout", "task-service", "0", env=env, check=True)
    run_weavenn("rollout", "task-service", "--shadow", env=env, check=True)
    gateway = own_stack.gateway
    wait_until(
        lambda: metric(gateway, "weavenn_rollout_shadow_enabled", service="task-service") == 1,
        30,
        "shadow mode never reached the gateway",
    )
    # The service's database holds every read until released: shadow calls hang there.
    engine = make_engine(own_stack.pg_url)
    with engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE"))
        with httpx.Client(base_url=gateway.url, timeout=30) as api, ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda n: api.get("/v2/tasks", headers={"X-User-Id": f"shadowed-{n}"}),
                    range(SHADOW_QUEUE_SIZE + 30),
                )
            )
        # Every user had the legacy answer while the new side had answered no one.
        assert {a.status_code for a in answers} == {200}
        assert {a.headers["x-weavenn-route"] for a in answers} == {"legacy"}
        compared = metric(gateway, "weavenn_rollout_shadow_comparisons_total", result="match")
        assert compared == 0
        dropped = metric(gateway, "weavenn_rollout_shadow_comparisons_total", result="dropped")
        assert dropped >= 30 - SHADOW_WORKERS
        blocker.rollback()
    engine.dispose()
