"""The migration of docs/migration-guide.md, rehearsed end to end on real processes.

The monolith (`weavenn serve`) runs on SQLite, the task service on a fresh PostgreSQL database,
the gateway in front of both, one relay per database publishing to RabbitMQ; the operator's
steps are the installed `weavenn` run as subprocesses, exactly as the guide writes them. A
client thread keeps creating and reading tasks the whole time. At the end: no request failed,
every task is readable exactly once through the gateway and stored exactly once in
PostgreSQL (and in SQLite up to the moment dual-write was switched off), and `weavenn migrate
status --json` said the right thing after every step.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.migration.conftest import pg_query, sqlite_query
from tests.rollout.conftest import UNLIMITED, route_of, users_near, wait_until
from tests.servers import Server, clean_environment, start_server
from weavenn_cli.runtime.rollout.cohorts import bucket

pytestmark = pytest.mark.xdist_group("migration-rehearsal")

SERVICE = "task-service"
# One user per tenth of the buckets: each step of the ramp moves someone.
USERS_PER_DECILE = 1
PAUSE_SECONDS = 0.02  # between two client operations: a small, steady load
STEP_TRAFFIC = 10  # tasks created within each step before the next one: every user acts


def decile_users() -> list[str]:
    users: list[str] = []
    for decile in range(10):
        found = 0
        for n in range(100_000):
            user = f"rehearsal-{decile}-{n}"
            if bucket(SERVICE, user) // 1000 == decile:
                users.append(user)
                found += 1
                if found == USERS_PER_DECILE:
                    break
    assert len(users) == STEP_TRAFFIC
    return users


def wait_for_percent(api: httpx.Client, percent: int) -> None:
    """Until the gateway routes the users next to the threshold as `percent` says. The probe
    lists a project nobody writes to: shadow mode compares its answers too, and a list other
    clients are adding to would differ between the two reads for a good reason."""
    inside, outside = users_near(SERVICE, percent)
    path = "/v2/tasks?project_id=nobody&limit=1"
    wait_until(
        lambda: (
            (inside is None or route_of(api, inside, path) == "new")
            and (outside is None or route_of(api, outside, path) == "legacy")
        ),
        30,
        f"the gateway never routed by {percent} %",
    )


@dataclass
class Created:
    id: str
    user: str
    step: str


@dataclass
class Client:
    """Creates a task, reads it back, and lists the user's project, user after user."""

    base_url: str
    users: list[str]
    step: str = "mvp"
    created: list[Created] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    routes: Counter[tuple[str, str]] = field(default_factory=Counter)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count_in(self, step: str) -> int:
        with self.lock:
            return sum(1 for task in self.created if task.step == step)

    def run(self) -> None:
        turn = 0
        with httpx.Client(timeout=30) as http:
            while not self.stopping.is_set():
                user = self.users[turn % len(self.users)]
                self._one_round(http, user, listing=turn % 5 == 0)
                turn += 1
                time.sleep(PAUSE_SECONDS)

    def _one_round(self, http: httpx.Client, user: str, *, listing: bool) -> None:
        step, base = self.step, self.base_url
        headers = {"X-User-Id": user}
        body = {"title": f"{step} task of {user}", "project_id": user}
        created = self._call(http, "POST", f"{base}/v2/tasks", headers, 201, json=body)
        if created is None:
            return
        task = created.json()
        with self.lock:
            self.created.append(Created(task["id"], user, step))
        read = self._call(http, "GET", f"{base}/v2/tasks/{task['id']}", headers, 200)
        if read is not None and read.json() != task:
            self.failures.append(f"{step}: read {read.json()} after creating {task}")
        if listing:
            self._check_listing(http, base, user, step)

    def _check_listing(self, http: httpx.Client, base: str, user: str, step: str) -> None:
        with self.lock:
            expected = [task.id for task in self.created if task.user == user]
        url = f"{base}/v2/tasks?project_id={user}&limit=500"
        listed = self._call(http, "GET", url, {"X-User-Id": user}, 200)
        if listed is None:
            return
        ids = Counter(item["id"] for item in listed.json()["items"])
        lost = [task_id for task_id in expected if ids[task_id] != 1]
        if lost:
            self.failures.append(f"{step}: {user} lists {len(lost)} of its tasks not once")

    def _call(
        self,
        http: httpx.Client,
        method: str,
        url: str,
        headers: dict[str, str],
        expected: int,
        **options: Any,
    ) -> httpx.Response | None:
        step = self.step
        try:
            answer = http.request(method, url, headers=headers, **options)
        except httpx.HTTPError as error:
            self.failures.append(f"{step}: {method} {url}: {type(error).__name__} {error}")
            return None
        if answer.status_code != expected:
            self.failures.append(f"{step}: {method} {url}: {answer.status_code} {answer.text}")
            return None
        route = answer.headers.get("x-weavenn-route", "monolith")
        with self.lock:
            self.routes[(step, route)] += 1
        return answer


@dataclass
class Rehearsal:
    weavenn_bin: Path
    folder: Path
    sqlite_url: str
    pg_url: str
    rabbitmq_url: str
    client: Client | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)

    @property
    def operator_env(self) -> dict[str, str]:
        """The operator's settings: PostgreSQL is the primary, the SQLite file the secondary."""
        return {
            "DATABASE_URL": self.pg_url,
            "SECONDARY_DATABASE_URL": self.sqlite_url,
            "RABBITMQ_URL": self.rabbitmq_url,
        }

    def weavenn(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run one operator command; it must succeed. Returns its stdout."""
        result = subprocess.run(
            [str(self.weavenn_bin), *args],
            env=clean_environment(env if env is not None else self.operator_env),
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (
            f"weavenn {' '.join(args)}: {result.stdout[-3000:]}{result.stderr}"
        )
        return result.stdout

    def status(self) -> dict[str, dict[str, str]]:
        """`weavenn migrate status --json` as {item: {state, detail}}, and the next step."""
        answer = json.loads(self.weavenn("migrate", "status", "--json"))
        checks = {check["item"]: check for check in answer["checks"]}
        checks["next step"] = {"state": "info", "detail": answer["next_step"]}
        return checks

    def serve(self, service: str, env: dict[str, str]) -> Server:
        server = start_server(self.weavenn_bin, self.folder / "servers", service, env)
        self.servers.append(server)
        return server

    def relay(self, database_url: str) -> None:
        log = (self.folder / f"relay-{len(self.processes)}.log").open("wb")
        env = {"DATABASE_URL": database_url, "RABBITMQ_URL": self.rabbitmq_url}
        self.processes.append(
            subprocess.Popen(
                [str(self.weavenn_bin), "relay"],
                env=clean_environment(env),
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )

    def events(self) -> tuple[int, int | None]:
        """Outbox rows still waiting in either database, and messages ready in agent_tasks."""

        def bus_status(url: str) -> dict[str, Any]:
            env = {"DATABASE_URL": url, "RABBITMQ_URL": self.rabbitmq_url}
            return dict(json.loads(self.weavenn("bus", "status", "--json", env=env)))

        with ThreadPoolExecutor(2) as pool:
            old, new = pool.map(bus_status, (self.sqlite_url, self.pg_url))
        queues = {queue["queue"]: queue for queue in new["queues"]}
        return old["outbox_pending"] + new["outbox_pending"], queues["agent_tasks"]["ready"]

    def step(self, name: str) -> None:
        """Let the client work a while in this step before the operator goes on."""
        assert self.client is not None
        self.client.step = name
        wait_until(
            lambda: self.client is not None and self.client.count_in(name) >= STEP_TRAFFIC,
            60,
            f"the client made no progress during {name}: {self.client.failures[-3:]}",
        )

    def stop(self) -> None:
        if self.client is not None:
            self.client.stopping.set()
        # Every process is told first, then waited for: they drain side by side.
        running = self.processes + [server.process for server in self.servers]
        for process in running:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            process.wait(30)
        for server in self.servers:
            server.stop()


@pytest.fixture
def rehearsal(
    weavenn_bin: Path, tmp_path: Path, pg_url: str, rabbitmq_url: str
) -> Iterator[Rehearsal]:
    sqlite_url = f"sqlite:///{tmp_path / 'data' / 'weave-nn.db'}"
    run = Rehearsal(weavenn_bin, tmp_path, sqlite_url, pg_url, rabbitmq_url)
    yield run
    run.stop()


def test_the_migration_guide_runs_without_a_failed_request_or_a_lost_task(
    rehearsal: Rehearsal, tmp_path: Path
) -> None:
    run = rehearsal
    vault = tmp_path / "vault"
    vault.mkdir()
    mvp = {"DATABASE_URL": run.sqlite_url, "RABBITMQ_URL": run.rabbitmq_url}

    # Phase 0, the MVP: the monolith on SQLite. It already knows the PostgreSQL database as its
    # secondary, which nothing touches while dual-write is off.
    run.weavenn("migrate", "db", env=mvp)
    run.weavenn("bus", "setup", env=mvp)
    run.relay(run.sqlite_url)
    monolith = run.serve(
        "all",
        {**mvp, "SECONDARY_DATABASE_URL": run.pg_url, "VAULT_PATH": str(vault), **UNLIMITED},
    )
    client = Client(monolith.url, decile_users())
    run.client = client
    worker = threading.Thread(target=client.run, daemon=True)
    worker.start()
    run.step("mvp")

    # 1. The schema on PostgreSQL.
    run.step("migrate db")
    run.weavenn("migrate", "db")
    status = run.status()
    assert status["dual-write"]["detail"] == "off, 0 pending failures"
    assert status["verify"]["state"] == "todo"
    assert status["next step"]["detail"] == "weavenn migrate dual-write on"

    # 2. The task service on PostgreSQL, and the gateway in front of both; clients move to it.
    # The operator's settings are the task service's: PostgreSQL first, mirroring to SQLite.
    task_service = run.serve("task-service", {**run.operator_env, **UNLIMITED})
    run.relay(run.pg_url)
    gateway = run.serve(
        "gateway",
        {
            "DATABASE_URL": run.pg_url,
            "MONOLITH_URL": monolith.url,
            "TASK_SERVICE_URL": task_service.url,
            **UNLIMITED,
        },
    )
    client.base_url = gateway.url
    run.step("serve task-service")
    status = run.status()
    assert status["task-service rollout"]["detail"] == "0 % of users on the task service"
    assert status["next step"]["detail"] == "weavenn migrate dual-write on"

    # 3. Dual-write on: every process follows within 2 s.
    run.weavenn("migrate", "dual-write", "on")
    time.sleep(2.1)  # the flag's cache in each process, documented as 2 s
    run.step("dual-write on")
    status = run.status()
    assert status["dual-write"] == {
        "item": "dual-write",
        "state": "ok",
        "detail": "on, 0 pending failures",
    }
    assert status["next step"]["detail"] == "weavenn migrate backfill"

    # 4. Backfill the history.
    run.step("backfill")
    run.weavenn("migrate", "backfill")
    status = run.status()
    assert status["backfill tasks"]["state"] == "ok"
    assert status["next step"]["detail"] == "weavenn migrate verify --repair"

    # 5. Verify: identical, while the client keeps writing.
    run.step("verify")
    report = json.loads(run.weavenn("migrate", "verify", "--json"))
    assert report["identical"], report
    status = run.status()
    assert status["verify"]["state"] == "ok"

    # 6. The ramp, with shadow mode comparing the monolith's answers with the service's.
    run.weavenn("rollout", SERVICE, "--shadow", "--reason", "rehearsal")
    with httpx.Client(base_url=gateway.url, timeout=30) as api:
        for percent in (10, 50, 100):
            run.weavenn("rollout", SERVICE, str(percent), "--reason", "rehearsal")
            wait_for_percent(api, percent)
            run.step(f"rollout {percent}")
            status = run.status()
            detail = f"{percent} % of users on the task service"
            assert status["task-service rollout"]["detail"] == detail
            assert status["dual-write"]["state"] == "ok"
            assert status["next step"]["detail"] == (
                "read tasks from PostgreSQL only, then: weavenn migrate dual-write off"
                if percent == 100
                else f"weavenn rollout task-service 100 (the monolith still serves "
                f"{100 - percent} % of users), then: weavenn migrate dual-write off"
            )
    traffic = json.loads(run.weavenn("rollout", SERVICE, "--json"))["traffic"]
    assert traffic["shadow"]["compared"] > 0
    if traffic["shadow"]["mismatched"]:
        pytest.fail(run.weavenn("rollout", SERVICE, "--mismatches", "--json"))
    assert traffic["new"]["errors"] == 0

    # Before the old database stops receiving writes: still identical.
    report = json.loads(run.weavenn("migrate", "verify", "--json"))
    assert report["identical"], report

    # 7. Dual-write off: PostgreSQL alone from now on.
    with client.lock:
        mirrored = {task.id for task in client.created}
    run.weavenn("migrate", "dual-write", "off")
    time.sleep(2.1)
    run.step("dual-write off")
    status = run.status()
    assert status["dual-write"]["detail"] == "off, 0 pending failures"
    assert status["verify"]["state"] == "ok"
    assert status["next step"]["detail"].startswith("retire the old database")

    client.stopping.set()
    worker.join(60)

    # 8. The manifests of the next phase, rendered and validated offline.
    with ThreadPoolExecutor(2) as pool:
        rendered = [
            pool.submit(run.weavenn, *args)
            for args in (
                ("compose", "render", "--with-postgres", "--output", "compose/docker-compose.yml"),
                ("k8s", "render", "--env", "prod", "--output", "k8s/prod"),
            )
        ]
        for done in rendered:
            done.result()
    compose = (tmp_path / "compose" / "docker-compose.yml").read_text()
    assert "postgres:" in compose and "mcp-server:" in compose
    validated = run.weavenn("k8s", "validate", "k8s/prod")
    assert "valid" in validated

    # Nothing failed, nothing was lost or written twice.
    assert client.failures == []
    created = [task.id for task in client.created]
    assert len(created) == len(set(created))
    with httpx.Client(base_url=gateway.url, timeout=30) as api:
        for user in client.users:
            page = api.get(
                "/v2/tasks",
                params={"project_id": user, "limit": 500},
                headers={"X-User-Id": user},
            )
            assert page.status_code == 200
            listed = Counter(item["id"] for item in page.json()["items"])
            mine = {task.id for task in client.created if task.user == user}
            assert set(listed) == mine
            assert all(count == 1 for count in listed.values())
    in_postgres = Counter(row[0] for row in pg_query(run.pg_url, "SELECT id FROM tasks"))
    assert set(in_postgres) == set(created)
    assert max(in_postgres.values()) == 1
    in_sqlite = {row[0] for row in sqlite_query(run.sqlite_url, "SELECT id FROM tasks")}
    assert mirrored <= in_sqlite
    # Each task's event left the database that served it once: RabbitMQ holds one
    # `task.created` per task in `agent_tasks` (no consumer runs here), and no outbox waits.
    wait_until(
        lambda: run.events() == (0, len(created)), 60, f"events: {run.events()} for {len(created)}"
    )
    routes = {route for (step, route) in client.routes if step == "rollout 100"}
    assert routes == {"new"}
    assert {"legacy", "new"} <= {route for (step, route) in client.routes if step == "rollout 50"}
