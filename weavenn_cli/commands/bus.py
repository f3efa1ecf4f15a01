"""`weavenn bus`: the event bus topology and its state; shared set-up for the bus commands."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

from weavenn_cli.commands._shared import get_settings, print_json, print_rows, stderr, stdout

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from weavenn_cli.runtime.bus.transport import Transport

app = typer.Typer(
    help="Event bus: declare the topology, show queue depths and dead letters.",
    no_args_is_help=True,
)


def open_bus() -> tuple[Engine, Transport]:
    """The main database and the transport the settings choose (RabbitMQ or embedded)."""
    from weavenn_cli.runtime.bus.transport import open_transport
    from weavenn_cli.runtime.db.engine import make_engine, require_tables

    settings = get_settings()
    engine = make_engine(settings.database_url)
    require_tables(engine, "outbox", "inbox", "dead_letters", "bus_messages", "bus_consumers")
    return engine, open_transport(settings, engine)


@app.command("setup")
def setup() -> None:
    """Declare exchanges, queues, bindings and retry queues (idempotent)."""
    _, transport = open_bus()
    try:
        with stderr.status(f"declaring the topology on {transport.describe()}"):
            transport.setup()
    finally:
        transport.close()
    topology = transport.topology
    delays = ", ".join(f"{delay:g}s" for delay in topology.retry_delays)
    print_rows(
        ("queue", "bindings", "retries"),
        ((q.name, " ".join(q.bindings), delays) for q in topology.queues),
        title=f"exchange {topology.exchange} → dead letters {topology.dead_letter_queue}",
    )
    stderr.print(f"topology ready on {transport.describe()}")


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Per queue: messages ready, unacknowledged, consumers, retrying, dead letters."""
    _, transport = open_bus()
    try:
        result = transport.status()
    finally:
        transport.close()
    if as_json:
        print_json(asdict(result))
        return
    print_rows(
        ("queue", "ready", "unacked", "consumers", "retrying", "dead letters"),
        (
            (
                q.queue,
                _count(q.ready),
                _count(q.unacknowledged),
                _count(q.consumers),
                _count(q.retrying),
                q.dead_letters,
            )
            for q in result.queues
        ),
        title=f"{result.transport}: {result.target}",
    )
    stdout.print(f"outbox: {result.outbox_pending} event(s) waiting for the relay")
    for note in result.notes:
        stderr.print(f"[yellow]note:[/] {note}", soft_wrap=True)


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)
