"""What `weavenn up` runs, and what it makes sure of before starting anything.

The children are the installed command itself (`python -m weavenn_cli ...`): `serve all`,
`watch` (which runs the outbox relay on a thread), and `consume NAME` for every registered
consumer that is not switched off (`--no-consumers`) and has what it needs configured.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from weavenn_cli.runtime.bus.topology import topology_from_settings
from weavenn_cli.runtime.config import Settings, mask_url
from weavenn_cli.runtime.consumers import registry
from weavenn_cli.runtime.errors import UsageError, WeavennError
from weavenn_cli.runtime.stack.state import read_state
from weavenn_cli.runtime.stack.supervisor import ChildSpec, IdleEntry

DATA_DIR = Path("data")
"""Where `up` keeps its state file and the children's logs (next to the default database)."""
STATE_FILE = DATA_DIR / "up.json"
LOG_DIR = DATA_DIR / "logs"
CONSUMER_DRAIN_SECONDS = 10
"""What a consumer may take to finish its messages in hand when the stack stops."""

# Consumers that have nothing to do until something is configured: any one of these
# settings is enough (the n8n consumer forwards to webhooks it must be told about).
NEEDS_SETTINGS: dict[str, tuple[str, ...]] = {
    "n8n-workflows": ("n8n_webhook_url", "n8n_routes"),
}

STOP_WATCH, STOP_CONSUMERS, STOP_API = 0, 1, 2
QUIET = ("--no-access-log",)


@dataclass(frozen=True)
class StackOptions:
    vault: Path
    port: int
    host: str = "127.0.0.1"
    skip_consumers: frozenset[str] = frozenset()
    cli_options: tuple[str, ...] = ()
    """Global options the children get too (--env-file, --debug)."""


@dataclass(frozen=True)
class StackPlan:
    children: list[ChildSpec]
    idle: list[IdleEntry]
    api_url: str
    vault: Path
    transport: str


def plan_stack(settings: Settings, options: StackOptions) -> StackPlan:
    unknown = sorted(options.skip_consumers - set(registry.REGISTERED))
    if unknown:
        known = ", ".join(registry.REGISTERED)
        raise UsageError(f"--no-consumers: unknown consumer {', '.join(unknown)} (known: {known})")
    command = (sys.executable, "-m", "weavenn_cli", *options.cli_options)
    children = [
        ChildSpec(
            "serve",
            # The panel asks /health every few seconds: an access log would be mostly that.
            (*command, "serve", "all", "--host", options.host, "--port", str(options.port), *QUIET),
            STOP_API,
        ),
        ChildSpec("watch", (*command, "watch"), STOP_WATCH),
    ]
    idle = []
    for info in registry.describe_all(topology_from_settings(settings)):
        name, queue = info.name, info.queue
        missing = _missing_configuration(name, settings)
        if name in options.skip_consumers:
            idle.append(IdleEntry(name, "disabled", "switched off with --no-consumers", queue))
        elif missing is not None:
            idle.append(IdleEntry(name, "not configured", missing, queue))
        else:
            args = ("consume", name, "--drain-timeout", str(CONSUMER_DRAIN_SECONDS))
            children.append(ChildSpec(name, (*command, *args), STOP_CONSUMERS, queue=queue))
    return StackPlan(
        children=children,
        idle=idle,
        api_url=f"http://{options.host}:{options.port}",
        vault=options.vault.expanduser().resolve(),
        transport=describe_transport(settings),
    )


def _missing_configuration(name: str, settings: Settings) -> str | None:
    needed = NEEDS_SETTINGS.get(name)
    if not needed or any(getattr(settings, setting, None) for setting in needed):
        return None
    return "set " + " or ".join(setting.upper() for setting in needed) + " to run it"


def describe_transport(settings: Settings) -> str:
    if settings.rabbitmq_url:
        return f"RabbitMQ at {mask_url(settings.rabbitmq_url)}"
    return "embedded (in the database)"


def parse_consumer_names(values: Iterable[str]) -> frozenset[str]:
    """`--no-consumers a --no-consumers b,c` → {a, b, c}."""
    return frozenset(part.strip() for value in values for part in value.split(",") if part.strip())


def child_environment(base: dict[str, str], vault: Path) -> dict[str, str]:
    """What every child sees: the chosen vault, logs written as they happen, wide log lines."""
    env = {**base, "VAULT_PATH": str(vault), "PYTHONUNBUFFERED": "1"}
    env.setdefault("COLUMNS", "160")
    return env


def ensure_not_running(state_file: Path = STATE_FILE) -> None:
    record = read_state(state_file)
    if record is not None and record.alive:
        raise WeavennError(
            f"weavenn up is already running in this folder (pid {record.pid}, API "
            f"{record.api_url}): `weavenn status` shows it; stop it with Ctrl-C or SIGTERM"
        )


def ensure_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise WeavennError(
                f"cannot serve the API on {host}:{port}: {error.strerror}; pick another --port"
            ) from None


def ensure_vault(vault: Path) -> None:
    if not vault.is_dir():
        raise UsageError(
            f"vault folder {vault} not found: pass --vault PATH, set VAULT_PATH, "
            "or run `weavenn up --demo` to create one with example notes"
        )


def prepare_backends(settings: Settings) -> None:
    """The schema at head, and on RabbitMQ the exchanges and queues declared."""
    from weavenn_cli.runtime import schema

    schema.upgrade(settings.database_url)
    if not settings.rabbitmq_url:
        return  # the embedded transport's queues are tables the migration just made
    from weavenn_cli.runtime.bus.transport import open_transport
    from weavenn_cli.runtime.db.engine import make_engine

    engine = make_engine(settings.database_url)
    transport = open_transport(settings, engine)
    try:
        transport.setup()
    finally:
        transport.close()
        engine.dispose()
