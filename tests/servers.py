"""Real `weavenn serve` processes on 127.0.0.1, started through the installed command, and the
databases they share within a module. A pytest plugin (tests/conftest.py loads it), so every
area's tests can start servers.

A server costs about a second to start, so tests that do not interfere share one per module
(`module_server`); tests that stop or reconfigure a server get their own (`server`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import WEAVENN_ENV_VARS, create_pg_database, drop_pg_database, pg_url_for

STARTUP_TIMEOUT = 45.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, **options: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **options)  # type: ignore[arg-type]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)


StartServer = Callable[..., Server]


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in WEAVENN_ENV_VARS}
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "LOG_LEVEL": "WARNING"})
    env.update(extra)
    return env


def start_server(
    weavenn_bin: Path, folder: Path, service: str, env: dict[str, str], *args: str
) -> Server:
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{service}-{port}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [str(weavenn_bin), "serve", service, "--port", str(port), "--no-access-log", *args],
            env=clean_environment(env),
            cwd=folder,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"weavenn serve {service} exited {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    pytest.fail(f"weavenn serve {service} did not answer /health:\n{server.output()}")


@pytest.fixture(scope="module")
def module_server(
    weavenn_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartServer]:
    """Start servers that live until the end of the module."""
    servers: list[Server] = []
    folder = tmp_path_factory.mktemp("servers")

    def start(service: str, env: dict[str, str], *args: str) -> Server:
        server = start_server(weavenn_bin, folder, service, env, *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(weavenn_bin: Path, tmp_path: Path) -> Iterator[StartServer]:
    """Start servers that live for one test."""
    servers: list[Server] = []

    def start(service: str, env: dict[str, str], *args: str) -> Server:
        server = start_server(weavenn_bin, tmp_path / "servers", service, env, *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def module_pg_url(pg_template: str) -> Iterator[str]:
    """A PostgreSQL database at head shared by one module's tests."""
    name = create_pg_database(template=pg_template)
    yield pg_url_for(name)
    drop_pg_database(name)


@pytest.fixture(scope="module")
def module_sqlite_url(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> str:
    target = tmp_path_factory.mktemp("sqlite") / "weave-nn.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"
