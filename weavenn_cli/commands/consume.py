"""`weavenn consume NAME`: run a consumer on the runner (acks after commit, retries, dlq)."""

from __future__ import annotations

import typer

from weavenn_cli.commands._shared import get_settings, print_rows, stderr
from weavenn_cli.runtime.errors import UsageError


def consume(
    name: str | None = typer.Argument(
        None, help="Registered consumer (see --list), or an import path module:Class."
    ),
    list_consumers: bool = typer.Option(
        False, "--list", help="Show every consumer with its queue and bindings."
    ),
    prefetch: int = typer.Option(
        50, "--prefetch", min=1, help="Messages in hand at once, unacknowledged."
    ),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", min=1, max=65535, help="Serve Prometheus metrics on this port."
    ),
    drain_timeout: float = typer.Option(
        30.0, "--drain-timeout", min=0, help="Seconds to finish the work in hand on SIGTERM."
    ),
) -> None:
    """Run a consumer until SIGTERM/SIGINT; reconnects to the broker and the database."""
    from weavenn_cli.runtime.consumers import registry

    settings = get_settings()
    if list_consumers:
        from weavenn_cli.runtime.bus.topology import topology_from_settings

        infos = registry.describe_all(topology_from_settings(settings))
        print_rows(
            ("consumer", "queue", "bindings", "mode"),
            (
                (i.name, i.queue, " ".join(i.bindings), "batches" if i.batched else "per message")
                for i in infos
            ),
        )
        if not infos:
            stderr.print("no consumer is registered yet; run one by import path (module:Class)")
        return
    if name is None:
        raise UsageError("name a consumer to run (see `weavenn consume --list`)")
    _run(registry.load(name, settings), prefetch, metrics_port, drain_timeout)


def _run(consumer: object, prefetch: int, metrics_port: int | None, drain_timeout: float) -> None:
    from datetime import timedelta

    from weavenn_cli.commands.bus import open_bus
    from weavenn_cli.runtime.consumers.runner import Runner
    from weavenn_cli.runtime.signals import stop_on_signals

    engine, transport = open_bus()
    runner = Runner(
        consumer,  # type: ignore[arg-type]
        transport,
        engine,
        prefetch=prefetch,
        drain_timeout=drain_timeout,
        inbox_retention=timedelta(hours=get_settings().inbox_retention_hours),
    )
    if metrics_port is not None:
        runner.metrics.serve(metrics_port)
        stderr.print(f"metrics on http://0.0.0.0:{metrics_port}/metrics")
    with stop_on_signals(runner.stop):
        runner.run()
    totals = ", ".join(f"{key} {value}" for key, value in runner.metrics.totals().items())
    stderr.print(f"{runner.consumer.name} stopped: {totals}")
