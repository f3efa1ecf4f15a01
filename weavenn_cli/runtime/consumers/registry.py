"""Consumers by name, for `weavenn consume NAME`.

A registered name maps to `module:attribute`, imported only when that consumer runs. NAME may
also be such an import path itself, so a consumer outside this package runs on the same
runner (`weavenn consume mypkg.audit:AuditConsumer`). The attribute is a consumer class (or
factory): called with the settings when it has a `from_settings` classmethod, else with no
arguments.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from weavenn_cli.runtime.bus.topology import Topology
from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.consumers.base import BatchConsumer, Consumer
from weavenn_cli.runtime.errors import UsageError

REGISTERED: dict[str, str] = {
    "mcp-sync": "weavenn_cli.runtime.consumers.mcp_sync:McpSyncConsumer",
    "git-auto-commit": "weavenn_cli.runtime.consumers.git_auto_commit:GitAutoCommitConsumer",
    "agent-tasks": "weavenn_cli.runtime.consumers.agent_tasks:AgentTasksConsumer",
    "n8n-workflows": "weavenn_cli.runtime.consumers.n8n_workflows:N8nWorkflowsConsumer",
}


@dataclass(frozen=True)
class ConsumerInfo:
    name: str
    queue: str
    bindings: tuple[str, ...]
    batched: bool
    target: str


def describe_all(topology: Topology) -> list[ConsumerInfo]:
    """Every registered consumer with its queue and the bindings of that queue."""
    infos = []
    for name, target in REGISTERED.items():
        factory = _import(target)
        queue = str(factory.queue)
        infos.append(
            ConsumerInfo(
                name=name,
                queue=queue,
                bindings=topology.queue(queue).bindings,
                batched=callable(getattr(factory, "handle_batch", None)),
                target=target,
            )
        )
    return infos


def load(name: str, settings: Settings) -> Consumer | BatchConsumer:
    target = REGISTERED.get(name) or (name if ":" in name else None)
    if target is None:
        known = ", ".join(REGISTERED) or "none registered yet"
        raise UsageError(
            f"unknown consumer {name!r} (known: {known}); or give an import path module:Class"
        )
    factory = _import(target)
    for attribute in ("name", "queue", "bindings"):
        if not hasattr(factory, attribute):
            raise UsageError(f"{target} is not a consumer: it has no {attribute!r}")
    if not any(callable(getattr(factory, method, None)) for method in ("handle", "handle_batch")):
        raise UsageError(f"{target} is not a consumer: it has neither handle() nor handle_batch()")
    from_settings = getattr(factory, "from_settings", None)
    consumer = from_settings(settings) if callable(from_settings) else factory()
    return consumer  # type: ignore[no-any-return]


def _import(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"cannot import consumer module {module_name!r}: {error}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise UsageError(f"module {module_name!r} has no {attribute!r}") from None
