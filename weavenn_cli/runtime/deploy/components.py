"""The processes of Weave-NN: every one runs the project image with a `weavenn` command.

One catalogue for Compose and Kubernetes, so both run the same commands with the same
ports and the same access to the vault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

VaultAccess = Literal["none", "ro", "rw"]

METRICS_PORT = 9100
# Where the containers find the vault and the SQLite data folder (WORKDIR is /app).
VAULT_MOUNT = "/vault"
DATA_MOUNT = "/app/data"


@dataclass(frozen=True)
class Component:
    """One long-running process."""

    name: str  # Kubernetes object name and `SERVICE_NAME`
    key: str  # its section in the values (`services.task_service`, `workers.relay`)
    compose_name: str  # its service name in docker-compose.yml (the design's names)
    args: tuple[str, ...]  # arguments of `weavenn`
    vault: VaultAccess
    http_port: int | None = None  # HTTP services: /health, /ready, /metrics on this port
    metrics_port: int | None = None  # workers that serve Prometheus metrics on a port of their own
    singleton: bool = False  # never more than one replica (ordering, git index, file watching)

    @property
    def http(self) -> bool:
        return self.http_port is not None

    @property
    def role(self) -> str:
        """The `app.kubernetes.io/component` label."""
        return "api" if self.http else "worker"


def _serve(service: str | None, port: int) -> tuple[str, ...]:
    head = ("serve", service) if service else ("serve",)
    return (*head, "--host", "0.0.0.0", "--port", str(port))


def _consume(name: str) -> tuple[str, ...]:
    return ("consume", name, "--metrics-port", str(METRICS_PORT))


HTTP_SERVICES = (
    Component("monolith", "monolith", "mcp-server", _serve(None, 8000), "rw", http_port=8000),
    Component("gateway", "gateway", "gateway", _serve("gateway", 8080), "none", http_port=8080),
    Component(
        "task-service",
        "task_service",
        "task-service",
        _serve("task-service", 8003),
        "none",
        http_port=8003,
    ),
    Component(
        "file-service",
        "file_service",
        "file-service",
        _serve("file-service", 8001),
        "rw",
        http_port=8001,
    ),
    Component(
        "git-service",
        "git_service",
        "git-service",
        _serve("git-service", 8002),
        "rw",
        http_port=8002,
    ),
)

WORKERS = (
    # The relay runs as its own singleton below, so the watcher does not relay too.
    Component("watcher", "watcher", "file-watcher", ("watch", "--no-relay"), "ro", singleton=True),
    Component("relay", "relay", "relay", ("relay",), "none", singleton=True),
    Component(
        "mcp-sync",
        "mcp_sync",
        "mcp-sync",
        _consume("mcp-sync"),
        "none",
        metrics_port=METRICS_PORT,
    ),
    Component(
        "git-auto-commit",
        "git_auto_commit",
        "git-consumer",
        _consume("git-auto-commit"),
        "rw",
        metrics_port=METRICS_PORT,
        singleton=True,
    ),
    Component(
        "agent-tasks",
        "agent_tasks",
        "agent-tasks",
        _consume("agent-tasks"),
        "rw",
        metrics_port=METRICS_PORT,
    ),
    Component(
        "n8n-workflows",
        "n8n_workflows",
        "n8n-workflows",
        _consume("n8n-workflows"),
        "none",
        metrics_port=METRICS_PORT,
    ),
)

COMPONENTS = HTTP_SERVICES + WORKERS

MIGRATE_ARGS = ("migrate", "db")


def by_name(name: str) -> Component:
    return next(c for c in COMPONENTS if c.name == name)
