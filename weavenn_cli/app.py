"""The `weavenn` command: global options, command groups, and error handling."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from weavenn_cli import __version__
from weavenn_cli.commands import bus as bus_commands
from weavenn_cli.commands import compose as compose_commands
from weavenn_cli.commands import config as config_commands
from weavenn_cli.commands import consume as consume_commands
from weavenn_cli.commands import dlq as dlq_commands
from weavenn_cli.commands import doctor as doctor_commands
from weavenn_cli.commands import k8s as k8s_commands
from weavenn_cli.commands import migrate as migrate_commands
from weavenn_cli.commands import relay as relay_commands
from weavenn_cli.commands import rollout as rollout_commands
from weavenn_cli.commands import serve as serve_commands
from weavenn_cli.commands import up as up_commands
from weavenn_cli.commands import vault as vault_commands
from weavenn_cli.commands import watch as watch_commands
from weavenn_cli.commands._shared import reset_state, state, stderr
from weavenn_cli.runtime.errors import WeavennError


class WeavennGroup(TyperGroup):
    """Turns errors into one line on stderr and an exit code; tracebacks only with --debug."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except WeavennError as error:
            if state.debug:
                stderr.print(traceback.format_exc(), markup=False, highlight=False)
            stderr.print(f"[red]error:[/] {escape(error.message)}", soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            stderr.print("interrupted")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if isinstance(error, _click_exceptions()):
                raise
            if state.debug:
                stderr.print(traceback.format_exc(), markup=False, highlight=False)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            stderr.print(
                f"[red]error:[/] unexpected {type(error).__name__}"
                + (f": {escape(reason)}" if reason else "")
                + " (run with --debug for the traceback)",
                markup=True,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None


def _click_exceptions() -> tuple[type[BaseException], ...]:
    from typer._click import exceptions as click_exceptions

    return (click_exceptions.ClickException,)


app = typer.Typer(
    cls=WeavennGroup,
    name="weavenn",
    help="Operate Weave-NN on one machine and migrate it, without downtime, to Kubernetes.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"weavenn {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    env_file: Path | None = typer.Option(
        None, "--env-file", help="Read settings from this file instead of ./.env.", metavar="PATH"
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Operate Weave-NN on one machine and migrate it, without downtime, to Kubernetes."""
    reset_state(env_file, debug)


app.command("up")(up_commands.up)
app.command("status")(up_commands.status)
app.add_typer(config_commands.app, name="config")
app.add_typer(migrate_commands.app, name="migrate")
app.command("doctor")(doctor_commands.doctor)
app.command("serve")(serve_commands.serve)
app.add_typer(vault_commands.app, name="vault")
app.command("watch")(watch_commands.watch)
app.add_typer(compose_commands.app, name="compose")
app.add_typer(k8s_commands.app, name="k8s")
app.add_typer(bus_commands.app, name="bus")
app.command("relay")(relay_commands.relay)
app.command("consume")(consume_commands.consume)
app.add_typer(dlq_commands.app, name="dlq")
# A negative PERCENT is a value to refuse clearly, not an unknown option.
app.command("rollout", context_settings={"ignore_unknown_options": True})(rollout_commands.rollout)


def main() -> None:
    app(prog_name="weavenn")
