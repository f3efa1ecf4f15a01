"""Kubernetes manifests rendered from `templates/k8s/*.yaml.j2`, in a stable order."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.deploy.components import (
    COMPONENTS,
    MIGRATE_ARGS,
    VAULT_MOUNT,
    Component,
    by_name,
)
from weavenn_cli.runtime.deploy.secrets import APP_SECRET_KEYS, SECRET_KEYS, SecretKey, secret_data
from weavenn_cli.runtime.deploy.templating import dump, dump_all, render_documents
from weavenn_cli.runtime.deploy.values import Values
from weavenn_cli.runtime.errors import UsageError
from weavenn_cli.runtime.resources import templates_dir

PART_OF = "weave-nn"
MANAGED_BY = "weavenn"

# Apply order: what others depend on first (namespace, config, secrets, storage, workloads),
# jobs last. Unknown kinds go just before jobs.
KIND_ORDER = (
    "Namespace",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "Service",
    "StatefulSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Ingress",
    "Job",
)


@dataclass(frozen=True)
class Manifest:
    body: dict[str, Any]

    @property
    def api_version(self) -> str:
        return str(self.body["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        namespace = self.body["metadata"].get("namespace")
        return str(namespace) if namespace else None

    @property
    def ref(self) -> str:
        """`deployment/task-service`, as kubectl names objects."""
        return f"{self.kind.lower()}/{self.name}"

    @property
    def file_name(self) -> str:
        return f"{self.kind.lower()}-{self.name}.yaml"

    def to_yaml(self) -> str:
        return dump(self.body)


def namespace_for(environment: str) -> str:
    return f"weave-nn-{environment}"


def instance_for(environment: str) -> str:
    return f"weave-nn-{environment}"


def render(
    values: Values,
    environment: str,
    *,
    include_secrets: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[Manifest]:
    """Every object for `environment`, in apply order."""
    context = _context(values, environment, include_secrets, environ or {})
    documents = [
        document
        for template in sorted((templates_dir() / "k8s").glob("*.yaml.j2"))
        for document in render_documents(f"k8s/{template.name}", context)
    ]
    return order([Manifest(_name_job_by_content(document)) for document in documents])


def order(manifests: Iterable[Manifest]) -> list[Manifest]:
    return sorted(manifests, key=lambda m: (kind_rank(m.kind), m.kind, m.namespace or "", m.name))


def kind_rank(kind: str) -> float:
    if kind in KIND_ORDER:
        return KIND_ORDER.index(kind)
    return KIND_ORDER.index("Job") - 0.5


def to_stream(manifests: Sequence[Manifest]) -> str:
    return dump_all(m.body for m in manifests)


def write_dir(manifests: Sequence[Manifest], folder: Path) -> list[Path]:
    """One file per object, named kind-name.yaml.

    Files of an earlier render that name objects no longer rendered (a Job of an older image)
    are removed, so the folder holds exactly what `apply --from` should apply.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for manifest in manifests:
        path = folder / manifest.file_name
        path.write_text(manifest.to_yaml(), encoding="utf-8")
        written.append(path)
    for stale in set(folder.glob("*.yaml")) - set(written):
        if _managed_by_weavenn(stale):
            stale.unlink()
    return written


def _managed_by_weavenn(path: Path) -> bool:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return False
    labels = document.get("metadata", {}).get("labels", {}) if isinstance(document, dict) else {}
    return isinstance(labels, dict) and labels.get("app.kubernetes.io/managed-by") == MANAGED_BY


def load(path: Path) -> list[Manifest]:
    """Manifests from a folder of YAML files, a file, or a multi-document stream."""
    if not path.exists():
        raise UsageError(f"{path} not found: render it with `weavenn k8s render --output {path}`")
    files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
    manifests = []
    for file in files:
        try:
            documents = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            raise UsageError(f"{file} is not valid YAML: {exc}") from None
        for document in documents:
            if document is None:
                continue
            if not isinstance(document, dict) or not {"apiVersion", "kind", "metadata"} <= set(
                document
            ):
                raise UsageError(f"{file} holds a document that is not a Kubernetes object")
            manifests.append(Manifest(document))
    if not manifests:
        raise UsageError(f"no Kubernetes objects in {path}")
    return order(manifests)


# -- the context the templates see -------------------------------------------------------


@dataclass(frozen=True)
class ComponentView:
    """A component as one environment runs it."""

    name: str
    role: str
    args: tuple[str, ...]
    http_port: int | None
    metrics_port: int | None
    vault: str
    replicas: int
    resources: dict[str, Any]
    autoscaled: bool


def _context(
    values: Values, environment: str, include_secrets: bool, environ: Mapping[str, str]
) -> dict[str, Any]:
    instance = instance_for(environment)
    views = [_view(values, c) for c in COMPONENTS if values.workload(c.key).enabled]
    config = app_config(values)
    return {
        "values": values,
        "namespace": namespace_for(environment),
        "components": views,
        "app_config": config,
        "config_checksum": hashlib.sha256(json.dumps(config).encode()).hexdigest()[:16],
        "app_secrets": APP_SECRET_KEYS,
        "secrets": secret_data(_needed_secrets(values), environ) if include_secrets else {},
        "ingress_routes": _ingress_routes(values, views),
        "migrate_args": MIGRATE_ARGS,
        "vault_mount": VAULT_MOUNT,
        "default_resources": values.resources.model_dump(),
        "resources_of": lambda item: (item.resources or values.resources).model_dump(),
        "labels": lambda name, role: labels(name, role, instance, values.image.tag),
        "selector": lambda name: selector(name, instance),
    }


def _view(values: Values, component: Component) -> ComponentView:
    workload = values.workload(component.key)
    return ComponentView(
        name=component.name,
        role=component.role,
        args=component.args,
        http_port=component.http_port,
        metrics_port=component.metrics_port,
        vault=component.vault,
        replicas=workload.replicas,
        resources=(workload.resources or values.resources).model_dump(),
        autoscaled=component.http and values.autoscaling.enabled and workload.replicas > 0,
    )


def _needed_secrets(values: Values) -> list[SecretKey]:
    infrastructure = {"postgres": values.postgres.enabled, "rabbitmq": values.rabbitmq.enabled}
    return [k for k in SECRET_KEYS if k.needed_by == "app" or infrastructure[k.needed_by]]


def _ingress_routes(
    values: Values, views: Sequence[ComponentView]
) -> list[tuple[str, ComponentView]]:
    enabled = {view.name: view for view in views}
    wanted = [
        ("/tasks", "task-service"),
        ("/files", "file-service"),
        ("/", values.ingress.default_backend),
    ]
    return [(path, enabled[name]) for path, name in wanted if name in enabled]


def app_config(values: Values) -> dict[str, str]:
    """The non-secret settings of every weavenn container on Kubernetes, sorted."""
    s = values.settings
    config = {
        "LOG_LEVEL": s.log_level,
        "VAULT_PATH": VAULT_MOUNT,
        "VAULT_ID": s.vault_id,
        "RABBITMQ_EXCHANGE": s.rabbitmq_exchange,
        "DEPLOYMENT_MODE": "kubernetes",
        "DUAL_WRITE_ENABLED": "true" if s.dual_write_enabled else "false",
        "CLAUDE_API_URL": s.claude_api_url,
        "TASK_SERVICE_URL": _service_url("task-service"),
        "FILE_SERVICE_URL": _service_url("file-service"),
        "GIT_SERVICE_URL": _service_url("git-service"),
        "MONOLITH_URL": _service_url("monolith"),
    }
    if values.redis.enabled:
        config["REDIS_URL"] = "redis://redis:6379/0"
    if s.obsidian_api_url:
        config["OBSIDIAN_API_URL"] = s.obsidian_api_url
    if s.n8n_webhook_url:
        config["N8N_WEBHOOK_URL"] = s.n8n_webhook_url
    for name in CONFIG_DEFAULTS:
        default = _setting_text(name)
        if default is not None:
            config.setdefault(name, default)
    config.update(s.extra)
    return dict(sorted(config.items()))


# Settings written into the ConfigMap at their default value, so that every knob of the
# containers shows in one place; `settings.extra` (values file) overrides any of them. Those
# without a default (unset means "decide for me") appear once given in `settings.extra`.
CONFIG_DEFAULTS = (
    *("AGENT_RULES_PATH", "AGENT_MAX_TAGS", "AUTO_LINK_APPLY", "AGENT_SUMMARY"),
    *("CLAUDE_MODEL", "CLAUDE_TIMEOUT_SECONDS", "CLAUDE_MAX_RETRIES"),
    *("N8N_ROUTES", "N8N_TIMEOUT_SECONDS"),
    *("GIT_COMMIT_DEBOUNCE_SECONDS", "AUTOCOMMIT_BATCH_SIZE", "GIT_AUTHOR_NAME"),
    *("GIT_AUTHOR_EMAIL", "GIT_AUTO_INIT", "GIT_REMOTE_PUSH", "GIT_BRANCH"),
    *("BUS_RETRY_DELAYS", "OUTBOX_RETENTION_HOURS", "INBOX_RETENTION_HOURS"),
    *("FILE_PATTERNS", "IGNORE_PATTERNS", "DEBOUNCE_SECONDS"),
    *("MAX_NOTE_TEXT_BYTES", "MAX_EVENT_BYTES", "REDIS_KEY_PREFIX"),
    *("DATABASE_POOL_SIZE", "RATE_LIMIT_PER_MINUTE", "MAX_REQUEST_BYTES"),
    "UPSTREAM_TIMEOUT_SECONDS",
    *("ROLLOUT_SHADOW_IGNORE_FIELDS", "ROLLOUT_BREAKER_FAILURES"),
    "ROLLOUT_BREAKER_COOLDOWN_SECONDS",
    *("NEW_TASK_SERVICE_ROLLOUT_PERCENTAGE", "TASK_SERVICE_ROLLOUT_PERCENTAGE"),
    *("FILE_SERVICE_ROLLOUT_PERCENTAGE", "GIT_SERVICE_ROLLOUT_PERCENTAGE"),
)


def _setting_text(name: str) -> str | None:
    """The default of a setting as its environment variable would spell it (None: unset)."""
    field = Settings.model_fields[name.lower()]
    value = field.get_default(call_default_factory=True)
    if value is None:
        return None
    return _env_text(value)


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return ",".join(_env_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _service_url(name: str) -> str:
    return f"http://{name}:{by_name(name).http_port}"


def labels(name: str, role: str, instance: str, version: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": role,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector(name: str, instance: str) -> dict[str, str]:
    """Selectors are immutable: only labels that never change between releases."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance}


def instance_selector(environment: str) -> str:
    """Label selector of every object weavenn manages in one environment."""
    instance = instance_for(environment)
    return f"app.kubernetes.io/managed-by={MANAGED_BY},app.kubernetes.io/instance={instance}"


def _name_job_by_content(document: dict[str, Any]) -> dict[str, Any]:
    """Jobs are immutable: name each after a digest of its spec, so a changed Job is a new one
    and re-applying an unchanged one is a no-op."""
    if document.get("kind") != "Job":
        return document
    digest = hashlib.sha256(json.dumps(document["spec"], sort_keys=True).encode()).hexdigest()
    document["metadata"]["name"] = f"{document['metadata']['name']}-{digest[:10]}"
    return document
