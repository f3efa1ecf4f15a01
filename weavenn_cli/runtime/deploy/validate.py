"""Offline checks of manifests: the Kubernetes JSON schemas, then the project's own rules."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from weavenn_cli.runtime.deploy.k8s import Manifest
from weavenn_cli.runtime.errors import UsageError

DEFAULT_KUBE_VERSION = "1.30"
PROD_NAMESPACE = "weave-nn-prod"
_SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|APIKEY|COOKIE|PRIVATE_KEY)", re.IGNORECASE
)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def supported_versions() -> list[str]:
    from kubernetes_validate import utils

    return sorted({utils.major_minor(v) for v in utils.all_versions()}, key=_version_key)


def check_kube_version(version: str) -> str:
    version = version.removeprefix("v")
    wanted = ".".join(version.split(".")[:2])
    supported = supported_versions()
    if wanted not in supported:
        raise UsageError(
            f"--kube-version {version}: schemas are available for {supported[0]} to {supported[-1]}"
        )
    return wanted


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def validate(manifests: Sequence[Manifest], kube_version: str = DEFAULT_KUBE_VERSION) -> list[str]:
    """Every failure as `kind/name: what is wrong`; an empty list means all is well."""
    version = check_kube_version(kube_version)
    failures: list[str] = []
    for manifest in manifests:
        failures.extend(f"{manifest.ref}: {problem}" for problem in _schema(manifest, version))
        failures.extend(f"{manifest.ref}: {problem}" for problem in rule_failures(manifest))
    return failures


def _schema(manifest: Manifest, version: str) -> list[str]:
    from kubernetes_validate import utils

    try:
        # Strict: an unknown field (a typo) is an error, as the API server's field validation.
        utils.validate(manifest.body, version, strict=True)
    except utils.ValidationError as error:
        where = ".".join(str(part) for part in error.path) or "(object)"
        return [f"{where}: {error.message} (Kubernetes {version} schema)"]
    except utils.SchemaNotFoundError:
        return [f"no schema for {manifest.kind} {manifest.api_version} in Kubernetes {version}"]
    return []


# -- the project's rules --------------------------------------------------------------------


def rule_failures(manifest: Manifest) -> list[str]:
    return [
        *_probes(manifest),
        *_pinned_images(manifest),
        *_secret_literals(manifest),
    ]


def _containers(manifest: Manifest) -> Iterator[dict[str, Any]]:
    if manifest.kind not in WORKLOAD_KINDS:
        return
    pod = manifest.body.get("spec", {}).get("template", {}).get("spec", {})
    yield from pod.get("initContainers", []) or []
    yield from pod.get("containers", []) or []


def _probes(manifest: Manifest) -> Iterator[str]:
    """An HTTP service (a port named http) has a liveness and a readiness probe."""
    if manifest.kind != "Deployment":
        return
    pod = manifest.body.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []) or []:
        serves_http = any(port.get("name") == "http" for port in container.get("ports", []) or [])
        if not serves_http:
            continue
        for probe in ("livenessProbe", "readinessProbe"):
            if probe not in container:
                yield f"container {container.get('name')} serves HTTP but has no {probe}"


def _pinned_images(manifest: Manifest) -> Iterator[str]:
    """In production every image names a version: `latest` or no tag can change under you."""
    if manifest.namespace != PROD_NAMESPACE:
        return
    for container in _containers(manifest):
        image = str(container.get("image", ""))
        if "@" in image:
            continue
        name = image.rsplit("/", 1)[-1]
        tag = name.split(":", 1)[1] if ":" in name else ""
        if tag in ("", "latest"):
            yield f"container {container.get('name')} uses image {image!r}: pin a version in prod"


def _secret_literals(manifest: Manifest) -> Iterator[str]:
    """Secrets live in Secret objects and reach containers by reference, never as literals."""
    for container in _containers(manifest):
        for item in container.get("env", []) or []:
            if "value" in item and _looks_secret(str(item["name"]), str(item["value"])):
                yield (
                    f"container {container.get('name')} sets {item['name']} to a literal: "
                    "use valueFrom.secretKeyRef"
                )
        for arg in [*(container.get("args") or []), *(container.get("command") or [])]:
            if _has_password(str(arg)):
                yield f"container {container.get('name')} has a password in its arguments"
    if manifest.kind == "ConfigMap":
        for key, value in (manifest.body.get("data") or {}).items():
            if _looks_secret(str(key), str(value)):
                yield f"data.{key} looks like a secret: move it to a Secret"


def _looks_secret(name: str, value: str) -> bool:
    return bool(value) and (bool(_SECRET_NAME.search(name)) or _has_password(value))


def _has_password(value: str) -> bool:
    """A URL that carries a password (`postgresql://user:secret@host/db`)."""
    for word in value.split():
        if "://" not in word:
            continue
        try:
            if urlsplit(word).password:
                return True
        except ValueError:
            continue
    return False
