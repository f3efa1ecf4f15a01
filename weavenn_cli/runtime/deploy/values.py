"""The values that shape rendered manifests: one typed model, filled from layers.

Precedence, lowest first (a later layer wins key by key):
1. the model's defaults (below),
2. the environment's file shipped in the package (`templates/values/ENV.yaml`; Kubernetes only),
3. each `--values FILE`, in the order given,
4. environment variables `WEAVENN_VALUES__<PATH>` (`__` between levels, e.g.
   `WEAVENN_VALUES__IMAGE__TAG=1.2.0`),
5. each `--set path=value`, in the order given.

An unknown key or a value of the wrong type is an error naming the key and the layer it came
from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from weavenn_cli import __version__
from weavenn_cli.runtime.errors import UsageError
from weavenn_cli.runtime.resources import templates_dir

ENVIRONMENTS = ("dev", "staging", "prod")
ENV_PREFIX = "WEAVENN_VALUES__"

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Amounts(_Strict):
    cpu: str
    memory: str

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _QUANTITY.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 250m, 512Mi)")
        return value


class Resources(_Strict):
    requests: Amounts = Amounts(cpu="250m", memory="256Mi")
    limits: Amounts = Amounts(cpu="500m", memory="512Mi")


class Image(_Strict):
    repository: str = "weave-nn/weavenn"
    # The image built from this package carries its version: what renders it runs it.
    tag: str = __version__
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


class Workload(_Strict):
    enabled: bool = True
    replicas: int = Field(1, ge=0)
    resources: Resources | None = None  # None: the top-level `resources`


class SingletonWorkload(Workload):
    replicas: int = Field(1, ge=0, le=1)


class Services(_Strict):
    monolith: Workload = Workload()
    gateway: Workload = Workload()
    task_service: Workload = Workload()
    file_service: Workload = Workload()
    git_service: Workload = Workload()


class Workers(_Strict):
    watcher: SingletonWorkload = SingletonWorkload()
    relay: SingletonWorkload = SingletonWorkload()
    mcp_sync: Workload = Workload()
    git_auto_commit: SingletonWorkload = SingletonWorkload()
    agent_tasks: Workload = Workload()
    n8n_workflows: Workload = Workload()


class Autoscaling(_Strict):
    """HorizontalPodAutoscaler per HTTP service; its minimum is the service's replicas."""

    enabled: bool = False
    max_replicas: int = Field(10, ge=1)
    target_cpu_percent: int = Field(70, ge=1, le=100)


class DisruptionBudget(_Strict):
    """PodDisruptionBudget per HTTP service."""

    enabled: bool = False
    max_unavailable: int = Field(1, ge=1)


class Ingress(_Strict):
    enabled: bool = True
    host: str = "api.weave-nn.local"
    class_name: str = "nginx"
    tls: bool = False
    cluster_issuer: str = "letsencrypt-prod"
    tls_secret: str = "weave-nn-tls"
    rate_limit_rps: int = Field(100, ge=1)
    # `/` goes to the monolith; once the gateway routes by rollout percentage, to the gateway.
    default_backend: Literal["monolith", "gateway"] = "monolith"


class Storage(_Strict):
    size: str = "10Gi"
    storage_class: str | None = None


class Postgres(_Strict):
    enabled: bool = True
    image: str = "postgres:15"
    user: str = "weave"
    database: str = "weave_nn"
    # One primary: replicas of plain postgres would be independent databases. Streaming
    # replication needs an operator (CloudNativePG, Zalando) in front of this StatefulSet.
    storage: Storage = Storage(size="50Gi")
    resources: Resources | None = None


class RabbitMQ(_Strict):
    enabled: bool = True
    image: str = "rabbitmq:3.13-management"
    replicas: int = Field(3, ge=1)
    user: str = "weave"
    storage: Storage = Storage(size="10Gi")
    resources: Resources | None = None


class Redis(_Strict):
    enabled: bool = True
    image: str = "redis:7.2"
    storage: Storage = Storage(size="1Gi")
    resources: Resources | None = None


class Vault(_Strict):
    """The PersistentVolumeClaim holding the Obsidian vault, shared by the pods that need it."""

    access_mode: Literal["ReadWriteMany", "ReadWriteOnce"] = "ReadWriteMany"
    storage: Storage = Storage(size="5Gi")


class AppSettings(_Strict):
    """Non-secret settings in the ConfigMap (secrets are referenced, never rendered)."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    vault_id: str = "weave-nn"
    rabbitmq_exchange: str = "weave-nn.events"
    dual_write_enabled: bool = False
    obsidian_api_url: str | None = None
    claude_api_url: str = "https://api.anthropic.com"
    n8n_webhook_url: str | None = None
    # Settings added later by other features (e.g. RATE_LIMIT_PER_MINUTE), by env name.
    extra: dict[str, str] = {}

    @field_validator("extra")
    @classmethod
    def _env_names(cls, extra: dict[str, str]) -> dict[str, str]:
        from weavenn_cli.runtime.deploy.secrets import APP_SECRET_KEYS

        secrets = {key.app_env: key for key in APP_SECRET_KEYS}
        for name in extra:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name (A-Z, 0-9, _)")
            if name in secrets:
                secret = secrets[name]
                raise ValueError(
                    f"{name} is a secret: it goes in Secret {secret.secret} (key {secret.key}), "
                    "never in the ConfigMap"
                )
        return extra


class Migration(_Strict):
    backoff_limit: int = Field(3, ge=0)
    ttl_seconds_after_finished: int = Field(86400, ge=0)


class Compose(_Strict):
    project_name: str = "weave-nn"
    postgres: bool = False  # `--with-postgres`
    # The design's phase 1: task/file/git services and the gateway next to the monolith.
    extracted_services: bool = False
    api_port: int = Field(8000, ge=1, le=65535)  # published on 127.0.0.1
    n8n_image: str = "n8nio/n8n:1.64.0"


class Values(_Strict):
    image: Image = Image()
    resources: Resources = Resources()
    services: Services = Services()
    workers: Workers = Workers()
    autoscaling: Autoscaling = Autoscaling()
    disruption_budget: DisruptionBudget = DisruptionBudget()
    ingress: Ingress = Ingress()
    postgres: Postgres = Postgres()
    rabbitmq: RabbitMQ = RabbitMQ()
    redis: Redis = Redis()
    vault: Vault = Vault()
    settings: AppSettings = AppSettings()
    migration: Migration = Migration()
    compose: Compose = Compose()

    def workload(self, key: str) -> Workload:
        group = self.services if hasattr(self.services, key) else self.workers
        workload: Workload = getattr(group, key)
        return workload


@dataclass(frozen=True)
class Layer:
    """A partial values tree and where it came from (for error messages)."""

    source: str
    data: dict[str, Any]


def load_values(
    environment: str | None = None,
    files: Sequence[Path] = (),
    sets: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Values:
    """Merge the layers in order of precedence and validate the result."""
    layers = build_layers(environment, files, sets, os.environ if environ is None else environ)
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.data)
    try:
        return Values.model_validate(merged)
    except ValidationError as exc:
        raise UsageError(describe_error(exc, layers)) from None


def build_layers(
    environment: str | None,
    files: Sequence[Path],
    sets: Sequence[str],
    environ: Mapping[str, str],
) -> list[Layer]:
    layers = []
    if environment is not None:
        layers.append(environment_layer(environment))
    layers.extend(file_layer(path) for path in files)
    layers.extend(environ_layers(environ))
    layers.extend(set_layer(assignment) for assignment in sets)
    return layers


def environment_file(environment: str) -> Path:
    if environment not in ENVIRONMENTS:
        raise UsageError(
            f"unknown environment {environment!r}: use one of {', '.join(ENVIRONMENTS)}"
        )
    return templates_dir() / "values" / f"{environment}.yaml"


def environment_layer(environment: str) -> Layer:
    path = environment_file(environment)
    return Layer(f"the {environment} values", _read_mapping(path))


def file_layer(path: Path) -> Layer:
    if not path.is_file():
        raise UsageError(f"values file {path} not found")
    return Layer(f"--values {path}", _read_mapping(path))


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"values file {path}{where} is not valid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"values file {path} must be a mapping of keys to values")
    return data


def environ_layers(environ: Mapping[str, str]) -> list[Layer]:
    layers = []
    for name in sorted(environ):
        if name.upper().startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            path = name[len(ENV_PREFIX) :].lower().split("__")
            layers.append(Layer(f"environment {name}", nest(path, parse_scalar(environ[name]))))
    return layers


def set_layer(assignment: str) -> Layer:
    key, sep, raw = assignment.partition("=")
    path = key.strip().split(".")
    if not sep or not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part) for part in path):
        raise UsageError(
            "--set expects path=value with a dotted path (e.g. image.tag=1.2.0), "
            f"got {assignment!r}"
        )
    return Layer(f"--set {assignment}", nest(path, parse_scalar(raw)))


def parse_scalar(raw: str) -> Any:
    """A string, left for the model to convert to its field's type ("3" → 3, "true" → True).

    `null` clears a value; `[...]` and `{...}` are YAML flow collections.
    """
    text = raw.strip()
    if text in ("null", "~"):
        return None
    if text.startswith(("[", "{")):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            raise UsageError(f"{raw!r} is not a valid YAML list or mapping") from None
    return raw


def nest(path: Sequence[str], value: Any) -> dict[str, Any]:
    tree: Any = value
    for part in reversed(path):
        tree = {part: tree}
    result: dict[str, Any] = tree
    return result


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in `override` replaces what `base` had."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def describe_error(exc: ValidationError, layers: Sequence[Layer]) -> str:
    first = exc.errors()[0]
    path = [str(part) for part in first["loc"]]
    key = ".".join(path) or "values"
    source = _source_of(path, layers)
    origin = f" (from {source})" if source else ""
    more = len(exc.errors()) - 1
    suffix = f"; and {more} more" if more else ""
    if first["type"] == "extra_forbidden":
        known = ", ".join(_known_keys(path[:-1]))
        return f"unknown value {key}{origin}: known keys here are {known}{suffix}"
    return f"invalid value {key}{origin}: {first['msg']}{suffix}"


def _source_of(path: Sequence[str], layers: Sequence[Layer]) -> str | None:
    for layer in reversed(layers):
        node: Any = layer.data
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            return layer.source
    return None


def _known_keys(path: Sequence[str]) -> Iterable[str]:
    model: Any = Values
    for part in path:
        field = model.model_fields.get(part)
        candidates = get_args(field.annotation) or (field.annotation,) if field else ()
        models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not models:
            return []
        model = models[0]
    return list(model.model_fields)
