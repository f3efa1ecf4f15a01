"""Health checks of an install: what `weavenn doctor` reports."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from weavenn_cli.runtime.config import Settings, mask_url
from weavenn_cli.runtime.errors import WeavennError


class Status(StrEnum):
    OK = "ok"
    FAIL = "fail"
    WARN = "warn"
    INFO = "info"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    required: bool

    @property
    def failed(self) -> bool:
        return self.required and self.status is Status.FAIL


def run_checks(settings: Settings | None, settings_error: str | None = None) -> list[CheckResult]:
    """Every check, in order. A settings failure makes the rest impossible to run."""
    if settings is None:
        return [CheckResult("settings", Status.FAIL, settings_error or "not loaded", True)]
    results = [CheckResult("settings", Status.OK, "loaded", True)]
    checks: list[Callable[[Settings], CheckResult]] = [
        check_database,
        check_rabbitmq,
        check_vault,
        check_vault_git,
        check_kubeconfig,
    ]
    results.extend(check(settings) for check in checks)
    return results


def check_database(settings: Settings) -> CheckResult:
    from weavenn_cli.runtime import schema

    name = "database"
    try:
        current = schema.current_revisions(settings.database_url)
        heads = schema.head_revisions()
    except WeavennError as error:
        return CheckResult(name, Status.FAIL, error.message, True)
    where = mask_url(settings.database_url)
    if set(current) == set(heads):
        return CheckResult(name, Status.OK, f"{where} at head {', '.join(heads)}", True)
    at = ", ".join(current) or "no revision"
    return CheckResult(
        name,
        Status.FAIL,
        f"{where} at {at}, head is {', '.join(heads)}: run `weavenn migrate db`",
        True,
    )


def check_rabbitmq(settings: Settings) -> CheckResult:
    name = "rabbitmq"
    if not settings.rabbitmq_url:
        return CheckResult(name, Status.SKIP, "RABBITMQ_URL not set: embedded transport", False)
    where = mask_url(settings.rabbitmq_url)
    try:
        version = _amqp_server_version(settings.rabbitmq_url)
    except (OSError, ValueError) as error:
        return CheckResult(name, Status.FAIL, f"{where} unreachable: {error}", True)
    return CheckResult(name, Status.OK, f"{where} (RabbitMQ {version})", True)


def _amqp_server_version(url: str, timeout: float = 3.0) -> str:
    """Connect, log in, and return the broker's version; OSError says why it could not."""
    import socket

    import pika
    import pika.exceptions

    params = pika.URLParameters(url)
    # A plain TCP probe first: it tells "refused" from "timed out" where pika says neither.
    with socket.create_connection((params.host, params.port), timeout=timeout):
        pass
    params.connection_attempts = 1
    params.socket_timeout = timeout
    params.blocked_connection_timeout = timeout
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.ProbableAuthenticationError:
        raise OSError("login refused: check the user and password in RABBITMQ_URL") from None
    except pika.exceptions.ProbableAccessDeniedError:
        raise OSError(f"access to vhost {params.virtual_host!r} refused") from None
    except pika.exceptions.AMQPError as error:
        raise OSError(f"AMQP handshake failed ({type(error).__name__})") from None
    try:
        properties = connection._impl.server_properties or {}
        version = properties.get("version", b"")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        connection.close()


def check_vault(settings: Settings) -> CheckResult:
    path = settings.vault_path
    if path.is_dir():
        notes = sum(1 for _ in _markdown_files(path, limit=100_000))
        return CheckResult("vault", Status.OK, f"{path} ({notes} notes)", True)
    return CheckResult(
        "vault", Status.FAIL, f"{path} does not exist: set VAULT_PATH or create it", True
    )


def _markdown_files(root: Path, limit: int) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(Path(dirpath, f) for f in filenames if f.endswith(".md"))
        if len(found) >= limit:
            break
    return found


def check_vault_git(settings: Settings) -> CheckResult:
    path = settings.vault_path
    if not path.is_dir():
        return CheckResult("vault git", Status.SKIP, "no vault", False)
    try:
        result = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except FileNotFoundError:
        return CheckResult("vault git", Status.WARN, "git is not installed", False)
    if result.returncode == 0 and result.stdout.strip() == "true":
        return CheckResult("vault git", Status.OK, "git repository", False)
    return CheckResult(
        "vault git",
        Status.WARN,
        "not a git repository: run `git init` in the vault (auto-commit needs one)",
        False,
    )


def check_kubeconfig(settings: Settings) -> CheckResult:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return CheckResult("kubeconfig", Status.INFO, "in-cluster configuration", False)
    candidates = os.environ.get("KUBECONFIG", "").split(os.pathsep)
    paths = [Path(p) for p in candidates if p] or [Path.home() / ".kube" / "config"]
    present = [p for p in paths if p.is_file()]
    if present:
        return CheckResult("kubeconfig", Status.INFO, ", ".join(map(str, present)), False)
    return CheckResult(
        "kubeconfig", Status.INFO, "none found (only needed for `weavenn k8s`)", False
    )
