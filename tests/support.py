"""Helpers shared by tests and fixtures (importable as `tests.support`)."""

from __future__ import annotations

import os
import uuid

import psycopg
from psycopg import sql

PG_HOST = os.environ.get("WEAVENN_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("WEAVENN_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("WEAVENN_TEST_PG_USER", "postgres")
PG_ADMIN_URL = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
RABBITMQ_HOST = "127.0.0.1"
RABBITMQ_PORT = int(os.environ.get("WEAVENN_TEST_RABBITMQ_PORT", "5672"))

# Settings a developer may have exported; tests start without them.
WEAVENN_ENV_VARS = (
    "DATABASE_URL",
    "SECONDARY_DATABASE_URL",
    "RABBITMQ_URL",
    "RABBITMQ_EXCHANGE",
    "RABBITMQ_MANAGEMENT_URL",
    "BUS_RETRY_DELAYS",
    "OUTBOX_RETENTION_HOURS",
    "INBOX_RETENTION_HOURS",
    "VAULT_PATH",
    "VAULT_ID",
    "FILE_PATTERNS",
    "IGNORE_PATTERNS",
    "DEBOUNCE_SECONDS",
    "MAX_NOTE_TEXT_BYTES",
    "MAX_EVENT_BYTES",
    "GIT_COMMIT_DEBOUNCE_SECONDS",
    "AUTOCOMMIT_BATCH_SIZE",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTO_INIT",
    "GIT_REMOTE_PUSH",
    "GIT_REMOTE",
    "GIT_BRANCH",
    "OBSIDIAN_API_URL",
    "OBSIDIAN_API_KEY",
    "CLAUDE_API_KEY",
    "CLAUDE_API_URL",
    "AGENT_RULES_PATH",
    "AGENT_MAX_TAGS",
    "AUTO_LINK_APPLY",
    "AGENT_SUMMARY",
    "CLAUDE_MODEL",
    "CLAUDE_TIMEOUT_SECONDS",
    "CLAUDE_MAX_RETRIES",
    "SERVICE_NAME",
    "LOG_LEVEL",
    "DEPLOYMENT_MODE",
    "TASK_SERVICE_URL",
    "FILE_SERVICE_URL",
    "GIT_SERVICE_URL",
    "DUAL_WRITE_ENABLED",
    "API_KEY",
    "N8N_WEBHOOK_URL",
    "N8N_ROUTES",
    "N8N_WEBHOOK_SECRET",
    "N8N_TIMEOUT_SECONDS",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "RATE_LIMIT_PER_MINUTE",
    "MAX_REQUEST_BYTES",
    "UPSTREAM_TIMEOUT_SECONDS",
    "MONOLITH_URL",
    "NEW_TASK_SERVICE_ROLLOUT_PERCENTAGE",
    "TASK_SERVICE_ROLLOUT_PERCENTAGE",
    "FILE_SERVICE_ROLLOUT_PERCENTAGE",
    "GIT_SERVICE_ROLLOUT_PERCENTAGE",
    "ROLLOUT_SHADOW_IGNORE_FIELDS",
    "ROLLOUT_BREAKER_FAILURES",
    "ROLLOUT_BREAKER_COOLDOWN_SECONDS",
    "WEAVENN_SERVE_SERVICE",
    "WEAVENN_SERVE_ENV_FILE",
    "PROMETHEUS_MULTIPROC_DIR",
    "KUBECONFIG",
    "WEAVENN_DEBUG",
)


def pg_url_for(database: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def create_pg_database(prefix: str = "weavenn_test", template: str | None = None) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)
    return name


def drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
