"""Run one service under uvicorn. SIGTERM stops accepting and drains in-flight requests."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

from weavenn_cli.runtime.api.services import ServiceName
from weavenn_cli.runtime.config import Settings, load_settings
from weavenn_cli.runtime.errors import UsageError, WeavennError

GRACEFUL_SHUTDOWN_SECONDS = 30
SERVICE_ENV = "WEAVENN_SERVE_SERVICE"
ENV_FILE_ENV = "WEAVENN_SERVE_ENV_FILE"
FACTORY = "weavenn_cli.runtime.api.server:app_from_environment"


def serve(
    service: ServiceName,
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    reload: bool = False,
    access_log: bool = True,
    env_file: Path | None = None,
) -> None:
    import uvicorn

    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if reload and workers > 1:
        raise UsageError("--reload runs one process: drop --workers or --reload")
    _check_port_free(host, port)
    options = {
        "host": host,
        "port": port,
        "log_level": settings.log_level.lower(),
        "access_log": access_log,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "proxy_headers": True,
    }
    if workers == 1 and not reload:
        from weavenn_cli.runtime.api.app import create_app

        # Built here, so a bad setting is one clear error before anything listens.
        uvicorn.run(create_app(service, settings), **options)  # type: ignore[arg-type]
        return
    # Worker and reloader processes build the app themselves from the same settings.
    os.environ[SERVICE_ENV] = service
    if env_file is not None:
        os.environ[ENV_FILE_ENV] = str(env_file.resolve())
    metrics_dir = None
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Every worker writes its metrics here; /metrics adds them up.
        metrics_dir = tempfile.mkdtemp(prefix="weavenn-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    package = Path(__file__).resolve().parents[2]
    try:
        uvicorn.run(
            FACTORY,
            factory=True,
            workers=workers,
            reload=reload,
            reload_dirs=[str(package)] if reload else None,
            **options,  # type: ignore[arg-type]
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def app_from_environment() -> object:
    """The factory uvicorn's worker processes call."""
    from weavenn_cli.runtime.api.app import create_app

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    env_file = os.environ.get(ENV_FILE_ENV)
    settings = load_settings(Path(env_file) if env_file else None)
    return create_app(os.environ[SERVICE_ENV], settings)  # type: ignore[arg-type]


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise WeavennError(
                f"cannot listen on {host}:{port}: {error.strerror}; pick another --port or --host"
            ) from None
