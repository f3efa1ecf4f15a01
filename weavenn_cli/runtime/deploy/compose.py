"""docker-compose.yml and .env.example for one machine, and `docker compose` run on them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from weavenn_cli.runtime.deploy.components import (
    DATA_MOUNT,
    HTTP_SERVICES,
    METRICS_PORT,
    MIGRATE_ARGS,
    VAULT_MOUNT,
    WORKERS,
    Component,
    by_name,
)
from weavenn_cli.runtime.deploy.templating import (
    TemplateError,
    dump,
    render_documents,
    render_text,
)
from weavenn_cli.runtime.deploy.values import Values
from weavenn_cli.runtime.errors import UsageError, WeavennError

ENV_EXAMPLE_FILE = ".env.example"


@dataclass(frozen=True)
class Variable:
    """A variable docker-compose.yml reads from .env."""

    name: str
    description: str
    example: str = ""  # never a secret: secrets stay empty
    required: bool = False
    secret: bool = False
    postgres_only: bool = False
    # Settings passed through to the weavenn containers (env_file): left commented so an
    # unset one stays unset instead of becoming an empty string.
    commented: bool = False
    group: str = "weavenn"


def variables(values: Values) -> list[Variable]:
    image = values.image.ref
    return [
        Variable("WEAVENN_IMAGE", "the project image", image),
        Variable(
            "WEAVENN_UID",
            "user id the weavenn containers run as; your own (`id -u`) lets them write VAULT_DIR",
            "10001",
        ),
        Variable("VAULT_DIR", "the Obsidian vault on this machine", "./vault"),
        Variable("RABBITMQ_USER", "RabbitMQ user", "weave", group="RabbitMQ"),
        Variable(
            "RABBITMQ_PASSWORD", "RabbitMQ password", required=True, secret=True, group="RabbitMQ"
        ),
        Variable(
            "POSTGRES_PASSWORD",
            "PostgreSQL password",
            required=True,
            secret=True,
            postgres_only=True,
            group="PostgreSQL",
        ),
        Variable("N8N_USER", "n8n basic-auth user", "admin", group="n8n"),
        Variable(
            "N8N_PASSWORD", "n8n basic-auth password", required=True, secret=True, group="n8n"
        ),
        *(
            Variable(name, description, example, secret=secret, commented=True, group="settings")
            for name, description, example, secret in _PASS_THROUGH
        ),
    ]


# Optional settings every weavenn container reads from .env (see `weavenn config show`).
_PASS_THROUGH = (
    ("LOG_LEVEL", "DEBUG, INFO, WARNING, ERROR or CRITICAL", "INFO", False),
    ("VAULT_ID", "vault name carried by events", "weave-nn", False),
    ("OBSIDIAN_API_URL", "Obsidian Local REST API", "https://host.docker.internal:27124", False),
    ("OBSIDIAN_API_KEY", "its API key", "", True),
    ("CLAUDE_API_KEY", "optional enrichment by the Claude API", "", True),
    ("API_KEY", "bearer key(s) the API requires, comma-separated", "", True),
    ("CLAUDE_API_URL", "Claude API endpoint", "https://api.anthropic.com", False),
    ("CLAUDE_MODEL", "Claude model of the summaries", "claude-haiku-4-5", False),
    ("CLAUDE_TIMEOUT_SECONDS", "seconds one Claude request may take", "10", False),
    ("CLAUDE_MAX_RETRIES", "retries of a failed Claude request", "2", False),
    ("AGENT_RULES_PATH", "agent-tasks rules (default: VAULT_PATH/.weavenn/rules.yaml)", "", False),
    ("AGENT_MAX_TAGS", "most tags agent-tasks adds to a note (unset: the rules decide)", "", False),
    ("AUTO_LINK_APPLY", "agent-tasks writes wikilinks (false: only suggests them)", "false", False),
    ("AGENT_SUMMARY", "agent-tasks asks Claude for note summaries", "false", False),
    (
        "N8N_WEBHOOK_URL",
        "where n8n-workflows forwards events",
        "http://n8n:5678/webhook/weave-nn",
        False,
    ),
    (
        "N8N_ROUTES",
        "JSON object: routing-key pattern -> n8n webhook URL (first match wins)",
        """{"vault.file.*": "http://n8n:5678/webhook/vault"}""",
        False,
    ),
    ("N8N_WEBHOOK_SECRET", "shared secret n8n-workflows signs its requests with", "", True),
    ("N8N_TIMEOUT_SECONDS", "seconds one n8n request may take", "10", False),
    ("GIT_COMMIT_DEBOUNCE_SECONDS", "git-auto-commit: quiet seconds before a commit", "5", False),
    ("AUTOCOMMIT_BATCH_SIZE", "git-auto-commit: pending changes that force a commit", "10", False),
    ("GIT_AUTHOR_NAME", "author of the vault's commits", "Weave-NN Bot", False),
    ("GIT_AUTHOR_EMAIL", "their e-mail", "bot@weave-nn.local", False),
    ("GIT_AUTO_INIT", "make the vault a git repository when it is not one", "true", False),
    ("GIT_REMOTE_PUSH", "push each commit", "false", False),
    ("GIT_REMOTE", "remote name or URL pushed to (a URL may carry a token)", "", True),
    ("GIT_BRANCH", "branch committed to (unset: the current one)", "", False),
    ("SECONDARY_DATABASE_URL", "the other database of a migration (dual-write)", "", True),
    ("DUAL_WRITE_ENABLED", "dual-write's starting value", "false", False),
    ("RABBITMQ_MANAGEMENT_URL", "RabbitMQ management API, for `weavenn bus status`", "", True),
    ("BUS_RETRY_DELAYS", "seconds before each retry of a failed message", "5,30,120,600", False),
    ("OUTBOX_RETENTION_HOURS", "hours a published outbox event is kept", "24", False),
    ("INBOX_RETENTION_HOURS", "hours a consumer remembers the messages it applied", "168", False),
    ("FILE_PATTERNS", "vault files watched (comma-separated globs)", "*.md", False),
    (
        "IGNORE_PATTERNS",
        "vault paths ignored (comma-separated globs)",
        ".obsidian,.trash,.git,.*,*~,*.tmp,*.swp,*.swx,~$*,4913",
        False,
    ),
    ("DEBOUNCE_SECONDS", "quiet seconds before a changed file is published", "0.5", False),
    ("MAX_NOTE_TEXT_BYTES", "note text carried by an event, at most", "262144", False),
    ("MAX_EVENT_BYTES", "size of an event, at most", "1048576", False),
    ("REDIS_URL", "Redis for the API's shared rate limits and cache", "", False),
    ("REDIS_KEY_PREFIX", "prefix of the keys in Redis", "weavenn", False),
    ("DATABASE_POOL_SIZE", "PostgreSQL connections per API process (lists, creates)", "5", False),
    ("RATE_LIMIT_PER_MINUTE", "requests per client and minute", "100", False),
    ("MAX_REQUEST_BYTES", "largest request body", "1048576", False),
    ("UPSTREAM_TIMEOUT_SECONDS", "gateway: seconds an upstream request may take", "30", False),
    ("ROLLOUT_SHADOW_IGNORE_FIELDS", "JSON keys shadow comparisons leave out", "", False),
    ("ROLLOUT_BREAKER_FAILURES", "failures that open a rollout's circuit breaker", "5", False),
    ("ROLLOUT_BREAKER_COOLDOWN_SECONDS", "seconds the breaker stays open", "30", False),
    *(
        (f"{service}_ROLLOUT_PERCENTAGE", f"starting rollout percentage of {name}", "", False)
        for service, name in (
            ("NEW_TASK_SERVICE", "new-task-service"),
            ("TASK_SERVICE", "task-service"),
            ("FILE_SERVICE", "file-service"),
            ("GIT_SERVICE", "git-service"),
        )
    ),
)


@dataclass(frozen=True)
class RenderedCompose:
    compose: str
    env_example: str


def render(values: Values) -> RenderedCompose:
    with_postgres = values.compose.postgres
    context = _context(values)
    document = render_documents("compose/docker-compose.yml.j2", context)[0]
    wanted = [v for v in variables(values) if with_postgres or not v.postgres_only]
    groups: dict[str, list[Variable]] = {}
    for variable in wanted:
        groups.setdefault(variable.group, []).append(variable)
    env_example = render_text("compose/env.example.j2", {"variable_groups": list(groups.items())})
    compose_text = dump(document)
    undocumented = interpolated_variables(compose_text) - {v.name for v in wanted}
    if undocumented:
        raise TemplateError(
            f"template compose/docker-compose.yml.j2 reads {', '.join(sorted(undocumented))} "
            "from .env but .env.example does not list it: add it to compose.variables()"
        )
    return RenderedCompose(compose=compose_text, env_example=env_example)


def _components(values: Values) -> list[Component]:
    http = [by_name("monolith")]
    if values.compose.extracted_services:
        http = list(HTTP_SERVICES)
    return [c for c in (*http, *WORKERS) if values.workload(c.key).enabled]


def _context(values: Values) -> dict[str, Any]:
    components = _components(values)
    return {
        "values": values,
        "with_postgres": values.compose.postgres,
        "image": "${WEAVENN_IMAGE:-" + values.image.ref + "}",
        "components": components,
        "migrate_args": MIGRATE_ARGS,
        "data_mount": DATA_MOUNT,
        "vault_mount": VAULT_MOUNT,
        "environment_for": lambda name: _environment(values, name, components),
        "healthcheck": _healthcheck,
        "published_port": lambda c: (
            values.compose.api_port if c.name == "monolith" else c.http_port
        ),
    }


def _environment(
    values: Values, service_name: str, components: Sequence[Component]
) -> dict[str, str]:
    """What compose derives for every weavenn container; the rest comes from .env."""
    pg = values.postgres
    database_url = (
        f"postgresql://{pg.user}:${{POSTGRES_PASSWORD}}@postgres:5432/{pg.database}"
        if values.compose.postgres
        else f"sqlite:///{DATA_MOUNT}/weave-nn.db"
    )
    environment = {
        "SERVICE_NAME": service_name,
        "DEPLOYMENT_MODE": "local",
        "DATABASE_URL": database_url,
        "RABBITMQ_URL": "amqp://${RABBITMQ_USER:-weave}:${RABBITMQ_PASSWORD}@rabbitmq:5672/",
        "RABBITMQ_EXCHANGE": values.settings.rabbitmq_exchange,
        "VAULT_PATH": VAULT_MOUNT,
    }
    names = {c.name for c in components}
    for name, variable in (
        ("task-service", "TASK_SERVICE_URL"),
        ("file-service", "FILE_SERVICE_URL"),
        ("git-service", "GIT_SERVICE_URL"),
    ):
        if name in names:
            environment[variable] = _url(name)
    if "gateway" in names:  # where it sends the legacy side
        environment["MONOLITH_URL"] = _url("monolith")
    return environment


def _url(name: str) -> str:
    return f"http://{by_name(name).compose_name}:{by_name(name).http_port}"


def _healthcheck(component: Component) -> list[str]:
    """HTTP services answer /health; consumers serve metrics; the others check what they need."""
    port, path = (
        (component.http_port, "/health") if component.http_port else (METRICS_PORT, "/metrics")
    )
    if component.http_port or component.metrics_port:
        url = f"http://127.0.0.1:{port}{path}"
        probe = f"import urllib.request; urllib.request.urlopen('{url}', timeout=5)"
        return ["CMD", "python", "-c", probe]
    # The watcher and the relay: database at head, broker reachable, vault folder present.
    return ["CMD", "weavenn", "doctor"]


def interpolated_variables(compose_text: str) -> set[str]:
    """Every `${NAME...}` docker compose substitutes in the file."""
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", compose_text))


def write(rendered: RenderedCompose, output: Path) -> list[Path]:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(rendered.compose, encoding="utf-8")
    env_example = output.parent / ENV_EXAMPLE_FILE
    env_example.write_text(rendered.env_example, encoding="utf-8")
    return [output, env_example]


# -- running docker compose -----------------------------------------------------------------


def compose_services(compose_file: Path) -> list[str]:
    if not compose_file.is_file():
        raise UsageError(
            f"{compose_file} not found: run `weavenn compose render` first (or pass --file)"
        )
    try:
        document = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise UsageError(f"{compose_file} is not valid YAML") from None
    services = document.get("services", {}) if isinstance(document, dict) else {}
    return list(services)


def docker_client() -> Any:
    """A docker SDK client that has answered a ping; a clear error when no engine runs."""
    import docker
    from docker.errors import DockerException

    endpoint = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except DockerException:
        raise WeavennError(
            f"no Docker engine answers at {endpoint}: start Docker (or point DOCKER_HOST at one)"
        ) from None
    return client


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def compose_command(compose_file: Path, *args: str) -> list[str]:
    return ["docker", "compose", "--file", str(compose_file), *args]


def run_compose(command: Sequence[str]) -> None:
    """Run `docker compose` in the foreground; its output goes straight to the terminal."""
    if shutil.which(command[0]) is None:
        raise WeavennError("the docker command is not installed: install Docker with compose v2")
    result = subprocess.run(list(command), check=False)
    if result.returncode != 0:
        raise WeavennError(f"`{' '.join(command)}` failed with exit code {result.returncode}")


def build_image(client: Any, context: Path, tag: str, log: Callable[[str], None]) -> None:
    """Build the project image from a checkout (the Dockerfile at its top) with the docker SDK."""
    if not (context / "Dockerfile").is_file():
        raise UsageError(
            f"no Dockerfile in {context}: --build needs a checkout of weavenn (pass --context)"
        )
    from docker.errors import APIError, BuildError

    try:
        for line in _build_stream(client, context, tag):
            log(line)
    except (APIError, BuildError) as error:
        raise WeavennError(f"building {tag} failed: {_first_line(error)}") from None


def _build_stream(client: Any, context: Path, tag: str) -> Iterator[str]:
    for chunk in client.api.build(path=str(context), tag=tag, rm=True, decode=True):
        if "error" in chunk:
            raise WeavennError(f"building {tag} failed: {chunk['error'].strip()}")
        text = str(chunk.get("stream", "")).rstrip()
        if text:
            yield text
