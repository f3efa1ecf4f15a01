"""`weavenn config`: the effective settings."""

from __future__ import annotations

import typer

from weavenn_cli.commands._shared import get_settings, print_json, print_rows, state

app = typer.Typer(help="Show the effective settings (secrets masked).", no_args_is_help=True)


@app.command("show")
def show(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print every setting, where it came from, and its value with secrets masked."""
    from weavenn_cli.runtime.config import describe_settings

    views = describe_settings(get_settings(), state.env_file)
    if as_json:
        print_json({v.name: {"value": v.value, "source": v.source} for v in views})
        return
    print_rows(("setting", "value", "source"), ((v.name, v.value, v.source) for v in views))
