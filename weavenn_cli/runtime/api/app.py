"""Build the FastAPI application of one `weavenn serve` process.

`all` is the monolith (every router plus the MVP's `/mcp` endpoints); the extracted services
carry their own router only; `gateway` is the strangler fig's façade in front of the monolith
and the services. In `all` and `gateway`, the routes of extracted services go to the new or
the legacy side per user (`rollout.py`). Which implementation serves tasks and files is
decided here, once: the database and the vault on disk (or Obsidian) in their own service,
the remote HTTP implementations in the monolith when DEPLOYMENT_MODE=kubernetes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException

from weavenn_cli import __version__
from weavenn_cli.runtime.api import gateway
from weavenn_cli.runtime.api.deps import Services
from weavenn_cli.runtime.api.metrics import HttpMetrics, MetricsMiddleware, RolloutMetrics
from weavenn_cli.runtime.api.middleware import (
    AuthMiddleware,
    BodyLimitMiddleware,
    RateLimitMiddleware,
    RequestContextMiddleware,
    request_id_of,
)
from weavenn_cli.runtime.api.ratelimit import RateLimiter
from weavenn_cli.runtime.api.rollout import RolloutMiddleware, RolloutRouting
from weavenn_cli.runtime.api.routers import files, git, mcp, tasks
from weavenn_cli.runtime.api.routers import search as search_routes
from weavenn_cli.runtime.api.services import ServiceName
from weavenn_cli.runtime.api.system import ReadinessCheck, system_router
from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.files.service import file_service_for
from weavenn_cli.runtime.git.repository import GitRepository
from weavenn_cli.runtime.problems import (
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Problem,
    ServiceUnavailable,
    ValidationFailed,
)
from weavenn_cli.runtime.search.service import search_service_for
from weavenn_cli.runtime.tasks.pages import DatabaseUnreachable
from weavenn_cli.runtime.tasks.service import task_service_for

logger = logging.getLogger("weavenn.api")

SERVES_TASKS = ("all", "task-service")
SERVES_FILES = ("all", "file-service")
SERVES_GIT = ("all", "git-service")
ROUTES_BY_ROLLOUT = ("all", "gateway")


def service_label(service: ServiceName, settings: Settings) -> str:
    """The name in /health and in metrics: SERVICE_NAME for the monolith, else the role."""
    return settings.service_name if service == "all" else service


def create_app(service: ServiceName, settings: Settings) -> FastAPI:
    name = service_label(service, settings)
    # The monolith on Kubernetes calls the extracted services; a service never calls itself.
    remote = service == "all" and settings.deployment_mode == "kubernetes"
    services = _services(service, settings, remote)
    limiter = RateLimiter(
        settings.rate_limit_per_minute, settings.redis_url, settings.redis_key_prefix
    )
    metrics = HttpMetrics(name)
    routing = (
        RolloutRouting(
            settings,
            gateway.Proxy(settings),
            RolloutMetrics(metrics.registry),
            # Only the monolith sits behind a gateway that has decided already.
            honour_legacy_pin=service == "all",
        )
        if service in ROUTES_BY_ROLLOUT
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            if routing is None:
                yield
            else:
                async with routing.proxy.running(), routing.running():
                    yield
        finally:
            await services.aclose()
            services.close()

    app = FastAPI(
        title=f"Weave-NN {name}",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.services = services
    _install_error_handlers(app)
    checks = _readiness_checks(service, settings, services, limiter, remote)
    app.include_router(system_router(name, checks, metrics))
    if services.tasks is not None:
        app.include_router(tasks.current_router("/v2/tasks"))
        app.include_router(tasks.current_router("/tasks"))
        app.include_router(tasks.v1_router())
        # First in the table: the busiest route is found before any other is tried.
        app.router.routes[:0] = [tasks.list_route("/v2/tasks"), tasks.list_route("/tasks")]
    if services.files is not None:
        app.include_router(files.router)
    if services.git is not None:
        app.include_router(git.router)
    if services.search is not None:
        app.include_router(search_routes.router)
    if service == "all":
        app.include_router(mcp.router)
    if service == "gateway" and routing is not None:
        app.include_router(gateway.monolith_router(gateway.monolith(settings), routing.proxy))
    # Added last = runs first: ids and error answers around everything, then metrics, so
    # refused requests (413, 401, 429) are counted too; routing only what got through.
    if routing is not None:
        app.add_middleware(RolloutMiddleware, routing=routing)
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(AuthMiddleware, keys=settings.api_keys())
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestContextMiddleware)
    return app


def _services(service: ServiceName, settings: Settings, remote: bool) -> Services:
    return Services(
        tasks=task_service_for(settings, remote=remote) if service in SERVES_TASKS else None,
        files=file_service_for(settings, remote=remote) if service in SERVES_FILES else None,
        git=GitRepository(settings.vault_path) if service in SERVES_GIT else None,
        search=search_service_for(settings, remote=remote) if service in SERVES_FILES else None,
    )


def _readiness_checks(
    service: ServiceName,
    settings: Settings,
    services: Services,
    limiter: RateLimiter,
    remote: bool,
) -> list[ReadinessCheck]:
    checks: list[ReadinessCheck] = []
    if not remote and (services.tasks is not None or services.search is not None):
        checks.append(ReadinessCheck("database", _database_probe(settings)))
    if services.tasks is not None and not remote and settings.rabbitmq_url:
        checks.append(ReadinessCheck("broker", _broker_probe(settings)))
    if services.files is not None:
        checks.append(ReadinessCheck("files", services.files.check))
    if service == "git-service" and services.git is not None:
        checks.append(ReadinessCheck("git", services.git.check))
    if settings.redis_url:
        checks.append(ReadinessCheck("redis", limiter.check))
    return checks


def _database_probe(settings: Settings) -> Callable[[], str]:
    from weavenn_cli.runtime import schema
    from weavenn_cli.runtime.db.engine import describe_url

    def probe() -> str:
        if not schema.is_at_head(settings.database_url):
            raise ServiceUnavailable("database is not at the schema head: run `weavenn migrate db`")
        return f"{describe_url(settings.database_url)} at head"

    return probe


def _broker_probe(settings: Settings) -> Callable[[], str]:
    from weavenn_cli.runtime.doctor import Status, check_rabbitmq

    def probe() -> str:
        result = check_rabbitmq(settings)
        if result.status is not Status.OK:
            raise ServiceUnavailable(result.detail)
        return result.detail

    return probe


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def problem(request: Request, error: Problem) -> JSONResponse:
        return _answer(request, error)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"location": list(e.get("loc", ())), "message": e.get("msg", "")}
            for e in error.errors()
        ]
        first = details[0] if details else {"location": [], "message": "invalid request"}
        where = ".".join(str(part) for part in first["location"])
        problem = ValidationFailed(f"{where}: {first['message']}", errors=details)
        return _answer(request, problem)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        problem: Problem
        if error.status_code == 404:
            problem = NotFound(f"no endpoint {request.method} {request.url.path}")
        elif error.status_code == 413:
            problem = PayloadTooLarge(str(error.detail))
        elif error.status_code == 405:
            problem = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        else:
            problem = Problem(str(error.detail))
            problem.status = error.status_code
        return _answer(request, problem)

    @app.exception_handler(sa_exc.OperationalError)
    async def database_down(request: Request, error: sa_exc.OperationalError) -> JSONResponse:
        return _database_unavailable(request, error.orig)

    # The list and the create read and write PostgreSQL on asyncpg, without SQLAlchemy.
    @app.exception_handler(DatabaseUnreachable)
    async def page_database_down(request: Request, error: DatabaseUnreachable) -> JSONResponse:
        return _database_unavailable(request, error)


def _database_unavailable(request: Request, error: BaseException | None) -> JSONResponse:
    logger.warning("database unavailable (request id %s): %s", request_id_of(request.scope), error)
    return _answer(request, ServiceUnavailable("the database is unavailable; retry shortly"))


def _answer(request: Request, problem: Problem) -> JSONResponse:
    headers = {"Retry-After": "5"} if problem.status == 503 else None
    return JSONResponse(
        jsonable_encoder(problem.body(request_id_of(request.scope))),
        status_code=problem.status,
        headers=headers,
    )
