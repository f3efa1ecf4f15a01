"""`weavenn relay`: publish the outbox to the bus."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from weavenn_cli.commands._shared import get_settings, stderr, stdout

if TYPE_CHECKING:
    from weavenn_cli.runtime.bus.relay import Relay
    from weavenn_cli.runtime.bus.transport import Transport


def relay(
    once: bool = typer.Option(
        False, "--once", help="Publish what is pending now, then exit (instead of running on)."
    ),
    window: int = typer.Option(
        500, "--window", min=1, help="Messages published before waiting for their confirms."
    ),
) -> None:
    """Publish outbox events with publisher confirms; marks them sent once confirmed."""
    from weavenn_cli.runtime.signals import stop_on_signals

    runner, transport = build_relay(window)
    if once:
        with stderr.status(f"publishing the outbox to {transport.describe()}"):
            published = runner.drain()
            pruned = runner.prune()
        stdout.print(f"published {published} event(s); pruned {pruned} old published row(s)")
        return
    stderr.print(f"relaying the outbox to {transport.describe()} (Ctrl-C to stop)")
    with stop_on_signals(runner.stop):
        runner.run()
    stats = runner.stats
    stderr.print(
        f"relay stopped: published {stats.published}, refused {stats.failed}, "
        f"pruned {stats.pruned}, outages {stats.outages}"
    )


def build_relay(window: int | None = None) -> tuple[Relay, Transport]:
    """A relay from the settings: main database, transport, outbox retention."""
    from datetime import timedelta

    from weavenn_cli.commands.bus import open_bus
    from weavenn_cli.runtime.bus.relay import DEFAULT_WINDOW, Relay

    engine, transport = open_bus()
    relay = Relay(
        engine,
        transport.publisher,
        window=window or DEFAULT_WINDOW,
        retention=timedelta(hours=get_settings().outbox_retention_hours),
    )
    return relay, transport
