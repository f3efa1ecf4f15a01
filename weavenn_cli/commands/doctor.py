"""`weavenn doctor`: is this install able to run?"""

from __future__ import annotations

import typer

from weavenn_cli.commands._shared import get_settings, print_json, print_rows, styled_status


def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Check settings, database, RabbitMQ, vault, kubeconfig; exit 1 if a required one fails."""
    from weavenn_cli.runtime.doctor import run_checks
    from weavenn_cli.runtime.errors import ConfigError

    try:
        results = run_checks(get_settings())
    except ConfigError as error:
        results = run_checks(None, error.message)
    if as_json:
        print_json(
            [
                {
                    "check": r.name,
                    "status": str(r.status),
                    "required": r.required,
                    "detail": r.detail,
                }
                for r in results
            ]
        )
    else:
        print_rows(
            ("check", "status", "detail"),
            ((r.name, styled_status(str(r.status)), r.detail) for r in results),
        )
    if any(r.failed for r in results):
        raise typer.Exit(1)
