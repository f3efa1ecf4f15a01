"""Benchmark of the task API on PostgreSQL against a bare FastAPI endpoint, same run.

    python bench/api.py [--duration 8] [--concurrency 16] [--repeats 3] [--tasks 10000]

Starts `weavenn serve task-service` on a fresh PostgreSQL database holding 10,000 tasks and,
next to it, a bare FastAPI app whose endpoint returns a constant (same uvicorn, one worker,
no access log). The task service runs with every middleware on, as in production: an API
key required (the load generator sends it to both servers) and the rate limit counted in
Redis (`BENCH_REDIS_URL`, default the local one; `--no-redis` counts in process), with a
limit no run reaches. The load comes from a second process: a keep-alive HTTP/1.1 client on
asyncio that runs closed-loop (N connections, each sending its next request when the previous one is
answered) for throughput, and open-loop at a fixed rate (latency measured from the scheduled
send time, so a slow server cannot hide its queueing) for the 100 req/s objective.

Prints requests/s and p50/p95/p99 per scenario (median of the repeats) and the ratio
list / bare. Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and Redis on
127.0.0.1:6379, as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
API_KEY = "bench-" + uuid.uuid4().hex
WORDS = ["write", "review", "link", "tag", "sync", "note"]
BARE_APP = """
import uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.get("/constant")
async def constant():
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port={port}, access_log=False, log_level="warning")
"""


# -- load generator (runs in its own process) --------------------------------------------


def _request_bytes(
    method: str, path: str, body: bytes | None, user: str | None = None, key: str | None = None
) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if key is not None:
        head += f"Authorization: Bearer {key}\r\n"
    if user is not None:
        head += f"X-User-Id: {user}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


def _bodies(method: str) -> list[bytes | None]:
    if method != "POST":
        return [None]
    return [
        json.dumps(
            {"title": f"bench {i}", "project_id": f"bench-{i % 20}", "tags": ["bench"]}
        ).encode()
        for i in range(1000)
    ]


def _user(number: int, users: int) -> str | None:
    """With `users`, requests come from that many users in turn (as X-User-Id)."""
    return f"bench-user-{number % users}" if users else None


async def _closed_loop(
    port: int,
    method: str,
    path: str,
    concurrency: int,
    duration: float,
    users: int = 0,
    key: str | None = None,
) -> dict[str, object]:
    bodies = _bodies(method)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def connection(index: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = index
        while time.perf_counter() < deadline:
            body = bodies[sent % len(bodies)]
            request = _request_bytes(method, path, body, _user(sent, users), key)
            sent += concurrency
            started = time.perf_counter()
            status = await _exchange(reader, writer, request)
            latencies.append(time.perf_counter() - started)
            errors += status >= 400
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "seconds": elapsed, "errors": errors, "lat": latencies}


async def _open_loop(
    port: int,
    method: str,
    path: str,
    rate: float,
    duration: float,
    connections: int,
    key: str | None = None,
) -> dict[str, object]:
    bodies = _bodies(method)
    latencies: list[float] = []
    errors = 0
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    async def one(number: int, scheduled: float) -> None:
        nonlocal errors
        reader, writer = await pool.get()
        try:
            request = _request_bytes(method, path, bodies[number % len(bodies)], key=key)
            status = await _exchange(reader, writer, request)
            latencies.append(time.perf_counter() - scheduled)
            errors += status >= 400
        finally:
            pool.put_nowait((reader, writer))

    start = time.perf_counter()
    tasks = []
    total = int(rate * duration)
    for number in range(total):
        scheduled = start + number / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(number, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait()[1].close()
    return {"requests": len(latencies), "seconds": elapsed, "errors": errors, "lat": latencies}


def loadgen_main(spec: dict[str, object]) -> None:
    if spec["mode"] == "closed":
        result = asyncio.run(
            _closed_loop(
                int(spec["port"]),  # type: ignore[arg-type]
                str(spec["method"]),
                str(spec["path"]),
                int(spec["concurrency"]),  # type: ignore[arg-type]
                float(spec["duration"]),  # type: ignore[arg-type]
                int(spec.get("users", 0)),  # type: ignore[call-overload]
                spec.get("key"),  # type: ignore[arg-type]
            )
        )
    else:
        result = asyncio.run(
            _open_loop(
                int(spec["port"]),  # type: ignore[arg-type]
                str(spec["method"]),
                str(spec["path"]),
                float(spec["rate"]),  # type: ignore[arg-type]
                float(spec["duration"]),  # type: ignore[arg-type]
                int(spec["concurrency"]),  # type: ignore[arg-type]
                spec.get("key"),  # type: ignore[arg-type]
            )
        )
    latencies = sorted(result.pop("lat"))  # type: ignore[arg-type]

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    result.update(
        rps=result["requests"] / result["seconds"],  # type: ignore[operator]
        p50=pct(50),
        p95=pct(95),
        p99=pct(99),
    )
    print(json.dumps(result))


# -- orchestration ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(port: int, path: str, process: subprocess.Popen[bytes]) -> None:
    import httpx

    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not start")


def create_database(tasks: int) -> tuple[str, str]:
    import psycopg
    from psycopg import sql

    from weavenn_cli.runtime import schema

    name = f"weavenn_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    schema.upgrade(url)
    fill_tasks(url, tasks)
    return name, url


def fill_tasks(url: str, count: int) -> None:
    from sqlalchemy import insert

    from weavenn_cli.runtime.db.engine import make_engine
    from weavenn_cli.runtime.db.models import Task

    rng = random.Random(7)
    now = datetime.now(UTC)
    statuses = ["todo", "in_progress", "done", "cancelled"]
    rows = []
    for i in range(count):
        created = now - timedelta(minutes=count - i)
        status = rng.choice(statuses)
        rows.append(
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128))),
                "project_id": f"project-{rng.randrange(20)}",
                "title": f"Task {i}: {' '.join(rng.choices(WORDS, k=4))}",
                "status": status,
                "due_date": created + timedelta(days=rng.randrange(1, 60)) if i % 3 else None,
                "completed": status == "done",
                "created_at": created,
                "updated_at": created,
                "tags": rng.sample(["inbox", "research", "ops", "writing", "q4", "urgent"], 2),
            }
        )
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(insert(Task), rows)
        connection.exec_driver_sql("ANALYZE tasks")
    engine.dispose()


def drop_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_backends(database: str) -> list[int]:
    """The PostgreSQL server processes serving `database` now (the API's connections)."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def run_load(spec: dict[str, object], server_pid: int, database: str) -> dict[str, float]:
    """The load generator in a second process, so it does not share the server's interpreter.

    Also the CPU time per request during the run of the server, of PostgreSQL's processes
    serving it (when PostgreSQL runs on this machine) and of the load generator: unlike
    requests/s, these hardly move with what else the machine is doing.
    """
    cpu_before = cpu_seconds(server_pid)
    backends_before = {pid: cpu_seconds(pid) for pid in database_backends(database)}
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, __file__, "--loadgen", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
    )
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures: dict[str, float] = json.loads(result.stdout)
    requests = max(1.0, figures["requests"])
    figures["cpu_ms"] = 1000 * (cpu_seconds(server_pid) - cpu_before) / requests
    database_busy = sum(
        cpu_seconds(pid) - backends_before.get(pid, 0.0) for pid in database_backends(database)
    )
    figures["db_cpu_ms"] = 1000 * database_busy / requests
    client_busy = (client_after.ru_utime + client_after.ru_stime) - (
        client_before.ru_utime + client_before.ru_stime
    )
    figures["client_cpu_ms"] = 1000 * client_busy / requests
    return figures


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        key: statistics.median(run[key] for run in runs)
        for key in ("rps", "p50", "p95", "p99", "errors", "cpu_ms", "db_cpu_ms", "client_cpu_ms")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument(
        "--no-redis", action="store_true", help="count the rate limit in process, not in Redis"
    )
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main(json.loads(args.loadgen))
        return

    print(f"filling PostgreSQL with {args.tasks} tasks...", file=sys.stderr)
    name, url = create_database(args.tasks)
    weavenn = Path(sys.executable).parent / "weavenn"
    api_port, bare_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "API_KEY": API_KEY,
        **({} if args.no_redis else {"REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": name}),
    }
    servers = [
        subprocess.Popen(
            [str(weavenn), "serve", "task-service", "--port", str(api_port), "--no-access-log"],
            env=env,
        ),
        subprocess.Popen([sys.executable, "-c", BARE_APP.replace("{port}", str(bare_port))]),
    ]
    try:
        wait_until_up(api_port, "/health", servers[0])
        wait_until_up(bare_port, "/constant", servers[1])
        api_pid, bare_pid = servers[0].pid, servers[1].pid
        scenarios = {
            "bare GET /constant": (bare_port, "GET", "/constant", bare_pid),
            "GET /v2/tasks?limit=50": (api_port, "GET", "/v2/tasks?limit=50", api_pid),
            "POST /v2/tasks": (api_port, "POST", "/v2/tasks", api_pid),
        }
        for port, method, path, pid in scenarios.values():  # warm-up: connections, caches, JIT-free
            run_load(
                {
                    "mode": "closed",
                    "port": port,
                    "key": API_KEY,
                    "method": method,
                    "path": path,
                    "concurrency": 4,
                    "duration": 1.5,
                },
                pid,
                name,
            )
        runs: dict[str, list[dict[str, float]]] = {label: [] for label in scenarios}
        for repeat in range(args.repeats):
            for label, (port, method, path, pid) in scenarios.items():
                print(f"run {repeat + 1}/{args.repeats}: {label}", file=sys.stderr)
                runs[label].append(
                    run_load(
                        {
                            "mode": "closed",
                            "port": port,
                            "key": API_KEY,
                            "method": method,
                            "path": path,
                            "concurrency": args.concurrency,
                            "duration": args.duration,
                        },
                        pid,
                        name,
                    )
                )
        paced = [
            run_load(
                {
                    "mode": "open",
                    "port": api_port,
                    "key": API_KEY,
                    "method": "GET",
                    "path": "/v2/tasks?limit=50",
                    "rate": args.rate,
                    "duration": args.duration,
                    "concurrency": 32,
                },
                api_pid,
                name,
            )
            for _ in range(args.repeats)
        ]
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            server.wait(30)
        drop_database(name)

    results = {label: median_of(r) for label, r in runs.items()}
    print(
        f"\nAPI on PostgreSQL, {args.tasks} tasks; closed loop, {args.concurrency} connections, "
        f"{args.duration:g} s x {args.repeats} (medians); uvicorn, 1 worker each; API key and "
        f"rate limit {'in process' if args.no_redis else 'in Redis'}\n"
    )
    print(
        f"{'scenario':<28}{'req/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'errors':>8}"
        f"{'server CPU ms/req':>19}{'database CPU':>14}{'client CPU':>12}"
    )
    for label, r in [*results.items(), (f"list at {args.rate:g} req/s (open)", median_of(paced))]:
        print(
            f"{label:<28}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p95']:>10.2f}{r['p99']:>10.2f}"
            f"{r['errors']:>8.0f}{r['cpu_ms']:>19.3f}{r['db_cpu_ms']:>14.3f}"
            f"{r['client_cpu_ms']:>12.3f}"
        )
    pace = median_of(paced)
    bare = results["bare GET /constant"]["rps"]
    ratio = results["GET /v2/tasks?limit=50"]["rps"] / bare
    print(f"\nlist / bare throughput: {ratio:.2f} (target >= 0.5)")
    print(f"POST / bare throughput: {results['POST /v2/tasks']['rps'] / bare:.2f}")
    print(f"list p95 at {args.rate:g} req/s: {pace['p95']:.2f} ms (target < 50 ms)")
    bare_cpu = results["bare GET /constant"]["cpu_ms"]
    for label in ("GET /v2/tasks?limit=50", "POST /v2/tasks"):
        cpu = results[label]["cpu_ms"]
        print(f"{label} server CPU: {cpu:.3f} ms a request, {cpu / bare_cpu:.1f} x the bare's")


if __name__ == "__main__":
    main()
