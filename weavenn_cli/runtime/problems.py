"""Errors a service answers with: a stable code, the HTTP status that carries it, one message.

The same classes serve both sides of a service boundary: a local implementation raises them,
the API turns them into `{"error": {"code", "message", "request_id"}}`, and a remote
implementation turns such an answer back into the same exception, so callers cannot tell a
local service from a remote one.
"""

from __future__ import annotations

from typing import Any, ClassVar

from weavenn_cli.runtime.errors import WeavennError


class Problem(WeavennError):
    """A request the service refused or could not serve."""

    code: str = "BAD_REQUEST"
    status: int = 400
    by_code: ClassVar[dict[str, type[Problem]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Problem.by_code[cls.code] = cls

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        if request_id:
            error["request_id"] = request_id
        return {"error": error}


def problem_from_answer(status: int, body: Any) -> Problem:
    """Rebuild the exception a remote service answered with (by its code, else by status)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("code") in Problem.by_code:
        return Problem.by_code[str(error["code"])](str(error.get("message", "")))
    message = str(error.get("message")) if isinstance(error, dict) else f"HTTP {status}"
    for cls in (NotFound, Conflict, ValidationFailed, Unauthorized, RateLimited):
        if cls.status == status:
            return cls(message)
    return UpstreamFailed(f"upstream answered HTTP {status}: {message}")


class ValidationFailed(Problem):
    code = "VALIDATION_ERROR"
    status = 422


class NotFound(Problem):
    code = "NOT_FOUND"
    status = 404


class MethodNotAllowed(Problem):
    code = "METHOD_NOT_ALLOWED"
    status = 405


class Conflict(Problem):
    code = "CONFLICT"
    status = 409


class Unauthorized(Problem):
    code = "UNAUTHORIZED"
    status = 401


class RateLimited(Problem):
    code = "RATE_LIMITED"
    status = 429


class PayloadTooLarge(Problem):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class InternalError(Problem):
    code = "INTERNAL_ERROR"
    status = 500


class UpstreamFailed(Problem):
    code = "UPSTREAM_FAILED"
    status = 502


class UpstreamUnavailable(Problem):
    code = "UPSTREAM_UNAVAILABLE"
    status = 502


class UpstreamTimeout(Problem):
    code = "UPSTREAM_TIMEOUT"
    status = 504


class ServiceUnavailable(Problem):
    code = "SERVICE_UNAVAILABLE"
    status = 503
