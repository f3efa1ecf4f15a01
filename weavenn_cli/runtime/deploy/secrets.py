"""The secrets Weave-NN needs, referenced by name and key, never rendered by default.

Operators create them in the cluster (`kubectl create secret generic postgres-secret
--from-literal=database-url=...`); `weavenn k8s render --include-secrets` renders them from
the environment variables named here instead.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from weavenn_cli.runtime.errors import UsageError


@dataclass(frozen=True)
class SecretKey:
    secret: str  # Secret object name
    key: str  # key inside it
    source: str  # environment variable that holds the value for --include-secrets
    app_env: str | None  # variable the weavenn containers read it into (None: infrastructure)
    optional: bool = False  # pods start without it
    needed_by: str = "app"  # "app", or the infrastructure that needs it: postgres, rabbitmq


SECRET_KEYS = (
    SecretKey("postgres-secret", "database-url", "DATABASE_URL", "DATABASE_URL"),
    SecretKey(
        "postgres-secret", "postgres-password", "POSTGRES_PASSWORD", None, needed_by="postgres"
    ),
    SecretKey("rabbitmq-secret", "rabbitmq-url", "RABBITMQ_URL", "RABBITMQ_URL"),
    SecretKey("rabbitmq-secret", "password", "RABBITMQ_PASSWORD", None, needed_by="rabbitmq"),
    SecretKey(
        "rabbitmq-secret", "erlang-cookie", "RABBITMQ_ERLANG_COOKIE", None, needed_by="rabbitmq"
    ),
    SecretKey("obsidian-secret", "api-key", "OBSIDIAN_API_KEY", "OBSIDIAN_API_KEY", optional=True),
    SecretKey("claude-secret", "api-key", "CLAUDE_API_KEY", "CLAUDE_API_KEY", optional=True),
    SecretKey("api-secret", "api-key", "API_KEY", "API_KEY", optional=True),
    SecretKey(
        "n8n-secret", "webhook-secret", "N8N_WEBHOOK_SECRET", "N8N_WEBHOOK_SECRET", optional=True
    ),
    # A remote URL may carry a token (https://user:token@host/...): never in a ConfigMap.
    SecretKey("git-secret", "remote", "GIT_REMOTE", "GIT_REMOTE", optional=True),
    # URLs that carry passwords.
    SecretKey(
        "postgres-secret",
        "secondary-database-url",
        "SECONDARY_DATABASE_URL",
        "SECONDARY_DATABASE_URL",
        optional=True,
    ),
    SecretKey(
        "rabbitmq-secret",
        "management-url",
        "RABBITMQ_MANAGEMENT_URL",
        "RABBITMQ_MANAGEMENT_URL",
        optional=True,
    ),
)

APP_SECRET_KEYS = tuple(k for k in SECRET_KEYS if k.app_env)


def secret_data(
    needed: Iterable[SecretKey], environ: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """Secret name → key → base64 value, from the environment; a required one missing fails."""
    data: dict[str, dict[str, str]] = {}
    for item in needed:
        value = environ.get(item.source)
        if not value:
            if item.optional:
                continue
            raise UsageError(
                f"--include-secrets: {item.source} is not set (it fills {item.secret}/{item.key}); "
                "export it or render without --include-secrets"
            )
        encoded = base64.b64encode(value.encode()).decode()
        data.setdefault(item.secret, {})[item.key] = encoded
    return data
