"""The processes `weavenn serve` can run, and their default ports (those of the design)."""

from __future__ import annotations

from typing import Literal, get_args

ServiceName = Literal["all", "gateway", "task-service", "file-service", "git-service"]
SERVICE_NAMES: tuple[str, ...] = get_args(ServiceName)

DEFAULT_PORTS: dict[str, int] = {
    "all": 8000,
    "file-service": 8001,
    "git-service": 8002,
    "task-service": 8003,
    "gateway": 8080,
}
