"""A RabbitMQ node of the test's own, on free ports, that a test may stop and start.

The shared broker is never stopped; a test that needs an outage runs this node instead
(its own node name, ports, Erlang cookie, data and log folders) and removes it afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRabbitMQ:
    def __init__(self, base: Path, *, management: bool = False) -> None:
        self.base = base
        self.node = f"weavenn-test-{uuid.uuid4().hex[:10]}@localhost"
        self.port = free_port()
        self.management_port = free_port() if management else None
        self._process: subprocess.Popen[bytes] | None = None
        home = base / "home"
        for folder in (home, base / "mnesia", base / "log"):
            folder.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        config = [f"listeners.tcp.default = 127.0.0.1:{self.port}"]
        plugins = "[]."
        if self.management_port:
            config += [
                f"management.tcp.port = {self.management_port}",
                "management.tcp.ip = 127.0.0.1",
                "collect_statistics_interval = 500",
            ]
            plugins = "[rabbitmq_management]."
        (base / "rabbitmq.conf").write_text("\n".join(config) + "\n")
        (base / "enabled_plugins").write_text(plugins + "\n")
        (base / "rabbitmq-env.conf").write_text("")
        self.env = {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(base / "node.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    def vhost(self) -> str:
        """A fresh vhost on this node; its URL."""
        name = f"weavenn-{uuid.uuid4().hex[:8]}"
        self._ctl("add_vhost", name)
        self._ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{name}"

    def start(self) -> PrivateRabbitMQ:
        self._process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self.env,
            stdout=(self.base / "server.out").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_for_port(self.port)
        if self.management_port:
            self._wait_for_port(self.management_port)
        return self

    def stop_app(self) -> None:
        """`rabbitmqctl stop_app`: the broker goes away, the node and its data stay."""
        self._ctl("stop_app")

    def start_app(self) -> None:
        self._ctl("start_app")
        self._wait_for_port(self.port)

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            try:
                self._ctl("stop", timeout=30)
                self._process.wait(30)
            except (subprocess.SubprocessError, OSError):
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def _wait_for_port(self, port: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                log = (self.base / "server.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"private RabbitMQ node exited: {log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"private RabbitMQ node did not listen on {port} within {timeout}s")
