"""`weavenn serve`: the HTTP API, as the monolith or as one extracted service."""

from __future__ import annotations

import typer

from weavenn_cli.commands._shared import get_settings, state, stderr
from weavenn_cli.runtime.api.services import DEFAULT_PORTS, SERVICE_NAMES


def serve(
    service: str = typer.Argument(
        "all",
        help="all (the monolith), gateway, task-service, file-service or git-service.",
        metavar="[SERVICE]",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int | None = typer.Option(
        None,
        "--port",
        min=1,
        max=65535,
        help="Port (default: all 8000, file-service 8001, git-service 8002, "
        "task-service 8003, gateway 8080).",
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
    reload: bool = typer.Option(False, "--reload", help="Restart when the code changes (dev)."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log each request."),
) -> None:
    """Serve the HTTP API: the monolith or one extracted service (uvicorn)."""
    if service not in SERVICE_NAMES:
        raise typer.BadParameter(
            f"{service!r} is not a service; choose one of {', '.join(SERVICE_NAMES)}",
            param_hint="SERVICE",
        )
    from weavenn_cli.runtime.api.server import serve as run

    settings = get_settings()
    chosen_port = port or DEFAULT_PORTS[service]
    stderr.print(f"serving {service} on http://{host}:{chosen_port} (docs at /docs)")
    run(
        service,  # type: ignore[arg-type]
        settings,
        host=host,
        port=chosen_port,
        workers=workers,
        reload=reload,
        access_log=access_log,
        env_file=state.env_file,
    )
