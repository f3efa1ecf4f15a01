"""One Settings object for every process: environment variables and a `.env` file.

Environment names follow the original Weave-NN design so existing `.env` files keep working.
Flags that operators flip at run time (rollout percentages, dual-write) do not live here:
they live in the database so every replica sees a change without a restart.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from weavenn_cli.runtime.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///./data/weave-nn.db"
DEFAULT_ENV_FILE = Path(".env")
MASK = "********"
DEFAULT_RETRY_DELAYS = (5.0, 30.0, 120.0, 600.0)


class Settings(BaseSettings):
    """Effective configuration; field names are the environment names in lower case."""

    model_config = SettingsConfigDict(
        env_file=DEFAULT_ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    database_url: str = DEFAULT_DATABASE_URL
    secondary_database_url: str | None = None
    # Connections of one API process for task lists and creates on PostgreSQL. More than about
    # twice the database server's cores only queue inside it: 5 gave a 2-core machine 20 % more
    # list throughput than 20, at lower latency.
    database_pool_size: int = Field(default=5, ge=1, le=1000)
    rabbitmq_url: str | None = None
    rabbitmq_exchange: str = "weave-nn.events"
    # Only `weavenn bus status` reads it (unacknowledged counts); default: RABBITMQ_URL's host
    # on port 15672 with the same credentials.
    rabbitmq_management_url: str | None = None
    # Delays before each retry of a failed message; after the last one it is dead-lettered.
    bus_retry_delays: Annotated[tuple[float, ...], NoDecode] = DEFAULT_RETRY_DELAYS
    outbox_retention_hours: float = Field(default=24.0, gt=0)
    # How long a consumer remembers the messages it applied (its inbox), to skip redeliveries.
    inbox_retention_hours: float = Field(default=168.0, gt=0)
    vault_path: Path = Path("./vault")
    vault_id: str = "weave-nn"
    # Comma-separated glob patterns, matched against file names (FILE_PATTERNS) and against
    # every component of a vault-relative path (IGNORE_PATTERNS).
    file_patterns: str = "*.md"
    ignore_patterns: str = ".obsidian,.trash,.git,.*,*~,*.tmp,*.swp,*.swx,~$*,4913"
    debounce_seconds: float = Field(default=0.5, ge=0, le=60)
    # What one vault event may carry: the note text is cut at MAX_NOTE_TEXT_BYTES; an event
    # still larger than MAX_EVENT_BYTES carries the note's identity without its metadata.
    max_note_text_bytes: int = Field(default=262_144, ge=0)
    max_event_bytes: int = Field(default=1_048_576, ge=16_384)
    # git-auto-commit: a commit when changes go quiet for GIT_COMMIT_DEBOUNCE_SECONDS or when
    # AUTOCOMMIT_BATCH_SIZE changes are pending; GIT_BRANCH unset means the current branch.
    git_commit_debounce_seconds: float = Field(default=5.0, ge=0, le=3600)
    autocommit_batch_size: int = Field(default=10, ge=1, le=10_000)
    git_author_name: str = Field(default="Weave-NN Bot", min_length=1)
    git_author_email: str = Field(default="bot@weave-nn.local", min_length=3)
    git_auto_init: bool = True
    git_remote_push: bool = False
    git_remote: str = Field(default="origin", min_length=1)
    git_branch: str | None = None
    obsidian_api_url: str | None = None
    obsidian_api_key: SecretStr | None = None
    claude_api_key: SecretStr | None = None
    claude_api_url: str = "https://api.anthropic.com"
    # agent-tasks: rules file (default: VAULT_PATH/.weavenn/rules.yaml, else the shipped set),
    # tags per note from the rules, wikilinks written or only suggested, Claude summaries.
    agent_rules_path: Path | None = None
    agent_max_tags: int | None = Field(default=None, ge=0)
    auto_link_apply: bool = False
    agent_summary: bool = False
    claude_model: str = "claude-haiku-4-5"
    claude_timeout_seconds: float = Field(default=10.0, gt=0)
    claude_max_retries: int = Field(default=2, ge=0, le=10)
    service_name: str = "weave-nn"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    deployment_mode: Literal["local", "kubernetes"] = "local"
    task_service_url: str = "http://localhost:8003"
    file_service_url: str = "http://localhost:8001"
    git_service_url: str = "http://localhost:8002"
    dual_write_enabled: bool = False
    api_key: SecretStr | None = None
    # Where n8n-workflows forwards events: N8N_ROUTES (JSON object, routing-key pattern -> URL,
    # first match wins) and N8N_WEBHOOK_URL for whatever no route matches.
    n8n_webhook_url: str | None = None
    n8n_routes: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    n8n_webhook_secret: SecretStr | None = None
    n8n_timeout_seconds: float = Field(default=10.0, gt=0)
    redis_url: str | None = None
    redis_key_prefix: str = "weavenn"
    rate_limit_per_minute: int = Field(default=100, ge=1)
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    upstream_timeout_seconds: float = Field(default=30.0, gt=0)
    monolith_url: str = "http://localhost:8000"
    # Starting rollout percentages, used while the database holds none (see runtime/rollout).
    new_task_service_rollout_percentage: int | None = Field(default=None, ge=0, le=100)
    task_service_rollout_percentage: int | None = Field(default=None, ge=0, le=100)
    file_service_rollout_percentage: int | None = Field(default=None, ge=0, le=100)
    git_service_rollout_percentage: int | None = Field(default=None, ge=0, le=100)
    rollout_shadow_ignore_fields: str = ""
    rollout_breaker_failures: int = Field(default=5, ge=1)
    rollout_breaker_cooldown_seconds: float = Field(default=30.0, gt=0)

    def api_keys(self) -> list[str]:
        """The accepted API keys: API_KEY holds one key or a comma-separated list."""
        if self.api_key is None:
            return []
        return [key.strip() for key in self.api_key.get_secret_value().split(",") if key.strip()]

    @field_validator("bus_retry_delays", mode="before")
    @classmethod
    def _comma_separated_seconds(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(float(part) for part in value.split(",") if part.strip())
        return value

    @field_validator("bus_retry_delays")
    @classmethod
    def _positive_delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(delay <= 0 for delay in value):
            raise ValueError("retry delays are seconds greater than 0, e.g. 5,30,120,600")
        return value

    @field_validator("n8n_routes", mode="before")
    @classmethod
    def _routes_from_json(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return {}
        example = """e.g. {"vault.file.*": "http://n8n:5678/webhook/vault"}"""
        try:
            routes = json.loads(value)
        except ValueError as error:
            raise ValueError(
                f"not JSON ({error}); give an object of routing-key pattern to URL, {example}"
            ) from None
        if not isinstance(routes, dict):
            raise ValueError(f"give a JSON object of routing-key pattern to URL, {example}")
        return routes

    @field_validator("n8n_routes")
    @classmethod
    def _routes_are_http(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern, url in value.items():
            if not pattern.strip() or any(not word for word in pattern.split(".")):
                raise ValueError(f"route pattern {pattern!r} is not a routing-key pattern")
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"route {pattern!r} goes to {url!r}, not an http(s) URL")
        return value

    def service_url(self, service: str) -> str:
        """Where an extracted service runs: TASK_SERVICE_URL, FILE_SERVICE_URL, GIT_SERVICE_URL."""
        urls = {
            "task-service": self.task_service_url,
            "file-service": self.file_service_url,
            "git-service": self.git_service_url,
        }
        return urls[service].rstrip("/")

    def shadow_ignored_fields(self) -> frozenset[str]:
        """JSON keys shadow comparisons leave out (ROLLOUT_SHADOW_IGNORE_FIELDS, comma list)."""
        return frozenset(
            name.strip() for name in self.rollout_shadow_ignore_fields.split(",") if name.strip()
        )

    def secondary_or_default_url(self) -> str:
        """The other database of the migration: SECONDARY_DATABASE_URL, or the default SQLite."""
        return self.secondary_database_url or DEFAULT_DATABASE_URL


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from the environment and `env_file` (default `./.env` when present).

    An `env_file` given explicitly must exist; the default one is optional.
    """
    if env_file is not None and not env_file.is_file():
        raise ConfigError(
            f"env file {env_file} not found: pass an existing file to --env-file or drop the option"
        )
    try:
        return Settings(_env_file=env_file or DEFAULT_ENV_FILE, **overrides)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc)) from exc


def _describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    name = str(first["loc"][0]).upper() if first["loc"] else "settings"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more)" if more else ""
    return f"invalid setting {name}: {first['msg']}{suffix}; fix the environment or .env file"


def mask_url(url: str) -> str:
    """Hide the password inside a URL: `postgresql://u:secret@h/db` -> `postgresql://u:****@h/db`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None:
        return url
    userinfo = f"{parts.username}:{MASK}" if parts.username else MASK
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{userinfo}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class SettingView:
    """One setting as shown to an operator: never a secret in clear."""

    name: str
    value: str | None
    source: str
    secret: bool


def describe_settings(settings: Settings, env_file: Path | None = None) -> list[SettingView]:
    """Every setting with its masked value and where it came from (env, .env file, default)."""
    file_values = _read_env_file(env_file or DEFAULT_ENV_FILE)
    environ = {key.upper() for key in os.environ}
    views = []
    for field in Settings.model_fields:
        env_name = field.upper()
        raw = getattr(settings, field)
        value, secret = _display_value(raw)
        if field == "git_remote" and value is not None:
            # A remote URL may carry a token as its user name (https://TOKEN@host/...),
            # which mask_url keeps: the whole userinfo goes.
            from weavenn_cli.runtime.redaction import redact_credentials

            shown = redact_credentials(value)
            value, secret = shown, secret or shown != value
        if env_name in environ:
            source = "env"
        elif env_name in file_values:
            source = str(env_file or DEFAULT_ENV_FILE)
        else:
            source = "default"
        views.append(SettingView(env_name, value, source, secret))
    return views


def _display_value(raw: object) -> tuple[str | None, bool]:
    if raw is None:
        return None, False
    if isinstance(raw, SecretStr):
        return MASK, True
    if isinstance(raw, dict):  # N8N_ROUTES, as JSON, each URL's password hidden
        if not raw:
            return None, False
        shown = {key: mask_url(str(url)) for key, url in raw.items()}
        return json.dumps(shown), shown != raw
    if isinstance(raw, tuple):  # shown as it is written in the environment
        return ",".join(
            f"{item:g}" if isinstance(item, float) else str(item) for item in raw
        ), False
    text = str(raw)
    masked = mask_url(text) if "://" in text else text
    return masked, masked != text


def _read_env_file(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    from dotenv import dotenv_values

    return {key.upper() for key in dotenv_values(path)}
