"""`/health` (liveness), `/ready` (readiness: dependencies answer) and `/metrics`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from weavenn_cli.runtime.api.metrics import HttpMetrics

READY_TIMEOUT_SECONDS = 3.0

Probe = Callable[[], str] | Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class ReadinessCheck:
    """One dependency: the probe returns a short description or raises."""

    name: str
    probe: Probe


def system_router(service: str, checks: list[ReadinessCheck], metrics: HttpMetrics) -> APIRouter:
    router = APIRouter(tags=["system"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/ready")
    async def ready() -> JSONResponse:
        results = await asyncio.gather(*(_run(check) for check in checks))
        answers = dict(zip((check.name for check in checks), results, strict=True))
        ok = all(result["ok"] for result in results)
        body = {"status": "ready" if ok else "not ready", "service": service, "checks": answers}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router


async def _run(check: ReadinessCheck) -> dict[str, Any]:
    try:
        if inspect.iscoroutinefunction(check.probe):
            detail = await asyncio.wait_for(check.probe(), READY_TIMEOUT_SECONDS)
        else:
            detail = await asyncio.wait_for(run_in_threadpool(check.probe), READY_TIMEOUT_SECONDS)
    except TimeoutError:
        return {"ok": False, "detail": f"no answer within {READY_TIMEOUT_SECONDS:g} s"}
    except Exception as error:  # a probe reports any failure as "not ready"
        reason = str(getattr(error, "message", None) or error).strip().splitlines()
        return {"ok": False, "detail": reason[0] if reason else type(error).__name__}
    return {"ok": True, "detail": detail}
