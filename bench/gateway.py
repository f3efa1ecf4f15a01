"""Benchmark of the gateway routing half the users to the task service, against the service direct.

    python bench/gateway.py [--duration 8] [--concurrency 16] [--repeats 3] [--tasks 10000]

Starts, on one fresh PostgreSQL database of 10,000 tasks, `weavenn serve task-service`, the
monolith (`weavenn serve`) and `weavenn serve gateway` in front of both (one uvicorn worker
each, no access log). The load comes from a second process, bench/api.py's load generator:
closed loop, keep-alive HTTP/1.1, `GET /v2/tasks?limit=50` from 1,000 users in turn
(X-User-Id). Scenarios, interleaved in each repeat:

- direct: the requests sent straight to the task service;
- gateway at 50 %: through the gateway, half the users proxied to the task service and half
  to the monolith (which answers from the same database);
- gateway at 100 %: through the gateway, every user proxied to the task service.

Prints requests/s and p50/p95/p99 per scenario (medians of the repeats) and the ratio
gateway / direct (target: at least 0.7). Needs PostgreSQL on 127.0.0.1:5432, as the tests do.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from api import create_database, drop_database, free_port, median_of, run_load, wait_until_up

USERS = 1000
PATH = "/v2/tasks?limit=50"


def start(weavenn: Path, service: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [str(weavenn), "serve", service, "--port", str(port), "--no-access-log"]
    return subprocess.Popen(command, env=env)


def set_percent(url: str, gateway_port: int, percent: int) -> None:
    """Store the percentage and wait until the gateway routes by it."""
    from weavenn_cli.runtime.config import load_settings
    from weavenn_cli.runtime.rollout.store import RolloutStore

    store = RolloutStore.open(url, load_settings())
    try:
        store.set_percent("task-service", percent, actor="bench/gateway.py")
    finally:
        store.close()
    wanted = f'weavenn_rollout_percentage{{service="task-service"}} {float(percent)}'
    for _ in range(100):
        if wanted in httpx.get(f"http://127.0.0.1:{gateway_port}/metrics").text:
            return
        time.sleep(0.1)
    raise SystemExit(f"the gateway never routed by {percent} %")


def load(port: int, args: argparse.Namespace, duration: float | None = None) -> dict[str, float]:
    return run_load(
        {
            "mode": "closed",
            "port": port,
            "method": "GET",
            "path": PATH,
            "concurrency": args.concurrency,
            "duration": duration or args.duration,
            "users": USERS,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()

    print(f"filling PostgreSQL with {args.tasks} tasks...", file=sys.stderr)
    name, url = create_database(args.tasks)
    weavenn = Path(sys.executable).parent / "weavenn"
    ports = {"task": free_port(), "monolith": free_port(), "gateway": free_port()}
    vault = tempfile.mkdtemp(prefix="bench-vault-")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "VAULT_PATH": vault,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "TASK_SERVICE_URL": f"http://127.0.0.1:{ports['task']}",
        "MONOLITH_URL": f"http://127.0.0.1:{ports['monolith']}",
    }
    servers = [
        start(weavenn, "task-service", ports["task"], env),
        start(weavenn, "all", ports["monolith"], env),
        start(weavenn, "gateway", ports["gateway"], env),
    ]
    scenarios = {
        "direct to the task service": (ports["task"], None),
        "gateway at 50 %": (ports["gateway"], 50),
        "gateway at 100 %": (ports["gateway"], 100),
    }
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in scenarios}
    try:
        for server, port in zip(servers, ports.values(), strict=True):
            wait_until_up(port, "/health", server)
        for port, percent in scenarios.values():  # warm-up
            if percent is not None:
                set_percent(url, ports["gateway"], percent)
            load(port, args, duration=1.5)
        for repeat in range(args.repeats):
            for label, (port, percent) in scenarios.items():
                if percent is not None:
                    set_percent(url, ports["gateway"], percent)
                print(f"run {repeat + 1}/{args.repeats}: {label}", file=sys.stderr)
                runs[label].append(load(port, args))
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            server.wait(60)
        drop_database(name)

    results = {label: median_of(r) for label, r in runs.items()}
    print(
        f"\nGET {PATH} from {USERS} users, PostgreSQL with {args.tasks} tasks; closed loop, "
        f"{args.concurrency} connections, {args.duration:g} s x {args.repeats} (medians); "
        "uvicorn, 1 worker each\n"
    )
    print(f"{'scenario':<30}{'req/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for label, r in results.items():
        print(
            f"{label:<30}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p95']:>10.2f}{r['p99']:>10.2f}"
            f"{r['errors']:>8.0f}"
        )
    direct = results["direct to the task service"]
    for label in ("gateway at 50 %", "gateway at 100 %"):
        ratio = results[label]["rps"] / direct["rps"]
        p95 = results[label]["p95"] / direct["p95"]
        print(f"{label} / direct: throughput {ratio:.2f} (target >= 0.7), p95 {p95:.2f}x")


if __name__ == "__main__":
    main()
