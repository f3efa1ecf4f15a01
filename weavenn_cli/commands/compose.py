"""`weavenn compose`: the stack on one machine with Docker Compose."""

from __future__ import annotations

from pathlib import Path

import typer

from weavenn_cli.commands._deploy import SET_OPTION, VALUES_OPTION, load_values
from weavenn_cli.commands._shared import stderr

app = typer.Typer(
    help="Render docker-compose.yml and run the stack on one machine with Docker Compose.",
    no_args_is_help=True,
)

FILE_OPTION = typer.Option(
    Path("docker-compose.yml"), "--file", help="The rendered compose file.", metavar="FILE"
)


@app.command("render")
def render(
    output: str = typer.Option(
        "docker-compose.yml",
        "--output",
        "-o",
        help="Where to write it (.env.example goes beside it); - for stdout.",
        metavar="FILE|-",
    ),
    with_postgres: bool = typer.Option(
        False, "--with-postgres", help="Add PostgreSQL and use it instead of SQLite."
    ),
    values_files: list[Path] = VALUES_OPTION,
    sets: list[str] = SET_OPTION,
) -> None:
    """Write docker-compose.yml and .env.example (every variable it reads, no secret values)."""
    from weavenn_cli.runtime.deploy import compose

    if with_postgres:
        sets = [*sets, "compose.postgres=true"]
    rendered = compose.render(load_values(None, values_files, sets))
    if output == "-":
        typer.echo(rendered.compose, nl=False)
        return
    for path in compose.write(rendered, Path(output)):
        stderr.print(f"wrote {path}")


def _docker(file: Path, *args: str) -> None:
    """Check the file and the engine, print the command, run it."""
    from weavenn_cli.runtime.deploy import compose

    compose.compose_services(file)
    compose.docker_client()
    _run(compose.compose_command(file, *args))


def _run(command: list[str]) -> None:
    from weavenn_cli.runtime.deploy import compose

    stderr.print(f"$ {' '.join(command)}", markup=False)
    compose.run_compose(command)


@app.command("up")
def up(
    build: bool = typer.Option(False, "--build", help="Build the project image first."),
    context: Path = typer.Option(
        Path("."), "--context", help="Checkout to build the image from.", metavar="DIR"
    ),
    file: Path = FILE_OPTION,
) -> None:
    """Start the stack in the background (docker compose up --detach)."""
    from weavenn_cli.runtime.deploy import compose

    compose.compose_services(file)
    client = compose.docker_client()
    if build:
        tag = load_values(None, [], []).image.ref
        stderr.print(f"building {tag} from {context}")
        compose.build_image(client, context, tag, lambda line: stderr.print(line, markup=False))
    _run(compose.compose_command(file, "up", "--detach"))


@app.command("down")
def down(
    volumes: bool = typer.Option(False, "--volumes", help="Also delete the named volumes."),
    file: Path = FILE_OPTION,
) -> None:
    """Stop and remove the stack's containers (and, with --volumes, its data)."""
    _docker(file, "down", *(["--volumes"] if volumes else []))


@app.command("ps")
def ps(file: Path = FILE_OPTION) -> None:
    """List the stack's containers and their health."""
    _docker(file, "ps")


@app.command("logs")
def logs(
    service: str = typer.Argument(..., help="Service name, e.g. mcp-sync."),
    follow: bool = typer.Option(False, "--follow", help="Keep printing new lines."),
    file: Path = FILE_OPTION,
) -> None:
    """Show one service's logs."""
    from weavenn_cli.runtime.deploy import compose
    from weavenn_cli.runtime.errors import UsageError

    services = compose.compose_services(file)
    if service not in services:
        raise UsageError(f"no service {service!r} in {file}: choose one of {', '.join(services)}")
    _docker(file, "logs", *(["--follow"] if follow else []), service)
