"""diff, apply, status and rollback against a cluster, through the kubernetes Python client.

Apply is server-side apply (field manager `weavenn`), object by object in dependency order.
Diff is what `kubectl diff` does: a server-side dry-run apply of each object compared with
the live one. Rollback is what `kubectl rollout undo` does: the pod template of the
Deployment's ReplicaSet for the wanted revision patched back into the Deployment.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weavenn_cli.runtime.deploy.k8s import KIND_ORDER, Manifest, kind_rank
from weavenn_cli.runtime.deploy.templating import dump
from weavenn_cli.runtime.errors import WeavennError

FIELD_MANAGER = "weavenn"
ROLLBACK_FIELD_MANAGER = "weavenn-rollback"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
# Annotations that describe the Deployment itself, not a revision (as kubectl skips them).
ROLLBACK_SKIPPED_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
# Server-set fields that say nothing about the desired state.
VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp")
# Namespaced kinds weavenn renders, and so may prune.
PRUNABLE = {
    "ServiceAccount": "v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "PersistentVolumeClaim": "v1",
    "Service": "v1",
    "StatefulSet": "apps/v1",
    "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "Ingress": "networking.k8s.io/v1",
    "Job": "batch/v1",
}


class ClusterError(WeavennError):
    """The cluster could not be reached, or refused an operation."""


@dataclass(frozen=True)
class Change:
    """What applying one object did (or, in a dry run, would do)."""

    ref: str
    action: str  # created, configured, unchanged, pruned
    diff: str = ""


class Cluster:
    """One connection to the API server of a kubeconfig context (or the in-cluster config)."""

    def __init__(self, context: str | None = None, request_timeout: float = 15.0) -> None:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.dynamic import DynamicClient

        configuration = client.Configuration()
        try:
            if os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
                config.load_incluster_config(client_configuration=configuration)
            else:
                # The client reads KUBECONFIG once, at import: read it now instead.
                kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
                config.load_kube_config(
                    config_file=kubeconfig, context=context, client_configuration=configuration
                )
        except (ConfigException, OSError) as error:
            raise ClusterError(
                f"no Kubernetes cluster configured ({_one_line(error)}): set KUBECONFIG, "
                "create ~/.kube/config or pass --context"
            ) from None
        configuration.retries = 1
        self.host = configuration.host
        self.timeout = request_timeout
        self._api = client.ApiClient(configuration)
        # The discovery cache lives as long as this object: no stale cache across runs.
        self._cache_dir = tempfile.TemporaryDirectory(prefix="weavenn-kube-")
        with self._errors("reading the API discovery"):
            self._dynamic = DynamicClient(
                self._api, cache_file=str(Path(self._cache_dir.name) / "discovery.json")
            )

    def close(self) -> None:
        self._api.close()
        self._cache_dir.cleanup()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level --------------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn the client's exceptions into one line that says what failed and where."""
        from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError
        from urllib3.exceptions import HTTPError

        try:
            yield
        except DynamicApiError as error:
            raise ClusterError(f"{doing}: {_api_message(error)}") from None
        except ResourceNotFoundError as error:
            raise ClusterError(f"{doing}: the cluster does not serve {error}") from None
        except HTTPError as error:
            reason = str(getattr(error, "reason", None) or error).rsplit(": ", 1)[-1]
            raise ClusterError(
                f"cannot reach the Kubernetes API at {self.host} ({reason[:200]}): "
                "check the current context and that the cluster is up"
            ) from None

    def _resource(self, api_version: str, kind: str) -> Any:
        with self._errors(f"looking up {kind} {api_version}"):
            return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        resource = self._resource(api_version, kind)
        with self._errors(f"reading {kind.lower()}/{name}"):
            try:
                found = resource.get(name=name, namespace=namespace, _request_timeout=self.timeout)
            except NotFoundError:
                return None
        body: dict[str, Any] = found.to_dict()
        return body

    def list_objects(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        resource = self._resource(api_version, kind)
        with self._errors(f"listing {kind} in {namespace}"):
            found = resource.get(
                namespace=namespace, label_selector=label_selector, _request_timeout=self.timeout
            )
        items: list[dict[str, Any]] = found.to_dict().get("items") or []
        return items

    def server_side_apply(
        self, manifest: Manifest, *, force: bool, dry_run: bool
    ) -> dict[str, Any]:
        from kubernetes.dynamic.exceptions import ConflictError

        resource = self._resource(manifest.api_version, manifest.kind)
        with self._errors(f"applying {manifest.ref}"):
            try:
                applied = resource.server_side_apply(
                    body=manifest.body,
                    name=manifest.name,
                    namespace=manifest.namespace,
                    field_manager=FIELD_MANAGER,
                    force_conflicts=force or None,
                    dry_run="All" if dry_run else None,
                    _request_timeout=self.timeout,
                )
            except ConflictError as error:
                raise ClusterError(
                    f"applying {manifest.ref}: {_api_message(error)}; another field manager "
                    "changed these fields (a rollback, kubectl edit): re-run with "
                    "--force-conflicts to take them back"
                ) from None
        body: dict[str, Any] = applied.to_dict()
        return body

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str, *, dry_run: bool
    ) -> None:
        resource = self._resource(api_version, kind)
        with self._errors(f"deleting {kind.lower()}/{name}"):
            resource.delete(
                name=name,
                namespace=namespace,
                propagation_policy="Background",
                dry_run="All" if dry_run else None,
                _request_timeout=self.timeout,
            )

    def json_patch(
        self, api_version: str, kind: str, name: str, namespace: str, patch: list[dict[str, Any]]
    ) -> None:
        resource = self._resource(api_version, kind)
        with self._errors(f"patching {kind.lower()}/{name}"):
            resource.patch(
                body=patch,
                name=name,
                namespace=namespace,
                content_type="application/json-patch+json",
                field_manager=ROLLBACK_FIELD_MANAGER,
                _request_timeout=self.timeout,
            )


# -- diff and apply -------------------------------------------------------------------------


def plan(
    cluster: Cluster,
    manifests: Sequence[Manifest],
    *,
    apply: bool,
    force: bool = False,
    with_diff: bool = False,
    on_change: Callable[[Change], None] = lambda change: None,
) -> list[Change]:
    """Server-side apply each object (for real, or as a dry run when `apply` is false) and
    report how it differs from what the cluster had."""
    changes = []
    for manifest in sorted(manifests, key=lambda m: kind_rank(m.kind)):
        live = cluster.get(manifest.api_version, manifest.kind, manifest.name, manifest.namespace)
        result = cluster.server_side_apply(manifest, force=force, dry_run=not apply)
        change = _compare(manifest.ref, live, result, with_diff)
        on_change(change)
        changes.append(change)
    return changes


def _compare(
    ref: str, live: dict[str, Any] | None, result: dict[str, Any], with_diff: bool
) -> Change:
    before, after = comparable(live), comparable(result)
    if live is not None and before == after:
        return Change(ref, "unchanged")
    action = "created" if live is None else "configured"
    if not with_diff:
        return Change(ref, action)
    lines = difflib.unified_diff(
        (dump(before) if live is not None else "").splitlines(keepends=True),
        dump(after).splitlines(keepends=True),
        fromfile=f"live/{ref}",
        tofile=f"merged/{ref}",
    )
    return Change(ref, action, "".join(lines))


def comparable(body: dict[str, Any] | None) -> dict[str, Any]:
    """The object without what the server alone sets (status, bookkeeping metadata)."""
    if body is None:
        return {}
    trimmed = copy.deepcopy(body)
    trimmed.pop("status", None)
    metadata = trimmed.get("metadata", {})
    for key in VOLATILE_METADATA:
        metadata.pop(key, None)
    return trimmed


def prune(
    cluster: Cluster,
    manifests: Sequence[Manifest],
    namespace: str,
    label_selector: str,
    *,
    dry_run: bool,
) -> list[Change]:
    """Delete what weavenn once applied to this environment and no longer renders."""
    keep = {(m.kind, m.name) for m in manifests}
    pruned = []
    kinds = sorted(PRUNABLE, key=kind_rank, reverse=True)  # dependents first
    for kind in kinds:
        for item in cluster.list_objects(PRUNABLE[kind], kind, namespace, label_selector):
            name = item["metadata"]["name"]
            if (kind, name) in keep or _owned_by_another(item):
                continue
            cluster.delete(PRUNABLE[kind], kind, name, namespace, dry_run=dry_run)
            pruned.append(Change(f"{kind.lower()}/{name}", "pruned"))
    return pruned


def _owned_by_another(item: dict[str, Any]) -> bool:
    """Objects a controller made (a Job's pods, a Deployment's ReplicaSets) go with their owner."""
    return bool(item["metadata"].get("ownerReferences"))


# -- status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutState:
    kind: str
    name: str
    desired: int
    updated: int
    ready: int
    available: int
    state: str
    done: bool


def rollout_status(cluster: Cluster, namespace: str, label_selector: str) -> list[RolloutState]:
    states = [
        deployment_state(item)
        for item in cluster.list_objects("apps/v1", "Deployment", namespace, label_selector)
    ]
    states += [
        statefulset_state(item)
        for item in cluster.list_objects("apps/v1", "StatefulSet", namespace, label_selector)
    ]
    return sorted(states, key=lambda s: (KIND_ORDER.index(s.kind), s.name))


def deployment_state(item: dict[str, Any]) -> RolloutState:
    """The verdict of `kubectl rollout status` for a Deployment, without waiting."""
    spec, status, metadata = item.get("spec", {}), item.get("status") or {}, item["metadata"]
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    if int(metadata.get("generation") or 0) > int(status.get("observedGeneration") or 0):
        state = "pending: new spec not yet observed"
    elif _condition_reason(status, "Progressing") == "ProgressDeadlineExceeded":
        state = "failed: progress deadline exceeded"
    elif updated < desired:
        state = f"progressing: {updated}/{desired} updated"
    elif total > updated:
        state = f"progressing: {total - updated} old terminating"
    elif available < updated:
        state = f"progressing: {available}/{updated} available"
    else:
        state = "rolled out"
    done = state == "rolled out"
    return RolloutState(
        "Deployment", metadata["name"], desired, updated, ready, available, state, done
    )


def statefulset_state(item: dict[str, Any]) -> RolloutState:
    """The verdict of `kubectl rollout status` for a StatefulSet, without waiting."""
    spec, status, metadata = item.get("spec", {}), item.get("status") or {}, item["metadata"]
    desired = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or ready)
    if int(metadata.get("generation") or 0) > int(status.get("observedGeneration") or 0):
        state = "pending: new spec not yet observed"
    elif ready < desired:
        state = f"progressing: {ready}/{desired} ready"
    elif status.get("updateRevision") != status.get("currentRevision"):
        state = f"progressing: {updated}/{desired} updated"
    else:
        state = "rolled out"
    done = state == "rolled out"
    return RolloutState(
        "StatefulSet", metadata["name"], desired, updated, ready, available, state, done
    )


def _condition_reason(status: dict[str, Any], kind: str) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            reason = condition.get("reason")
            return str(reason) if reason else None
    return None


# -- rollback -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollback:
    deployment: str
    revision: int
    skipped: bool  # the Deployment already runs that revision's template


def rollback(cluster: Cluster, namespace: str, name: str, to_revision: int = 0) -> Rollback:
    """`kubectl rollout undo deployment/NAME [--to-revision N]`."""
    deployment = cluster.get("apps/v1", "Deployment", name, namespace)
    if deployment is None:
        raise ClusterError(f"deployment/{name} not found in namespace {namespace}")
    if deployment.get("spec", {}).get("paused"):
        raise ClusterError(
            f"deployment/{name} is paused: resume it (kubectl rollout resume) before rolling back"
        )
    target = _revision_replica_set(cluster, deployment, to_revision)
    revision = _revision(target)
    template = copy.deepcopy(target["spec"]["template"])
    template.get("metadata", {}).get("labels", {}).pop(POD_TEMPLATE_HASH, None)
    if _same_template(template, deployment["spec"]["template"]):
        return Rollback(name, revision, skipped=True)
    annotations = {
        key: value
        for key, value in (deployment["metadata"].get("annotations") or {}).items()
        if key in ROLLBACK_SKIPPED_ANNOTATIONS
    }
    annotations.update(
        {
            key: value
            for key, value in (target["metadata"].get("annotations") or {}).items()
            if key not in ROLLBACK_SKIPPED_ANNOTATIONS
        }
    )
    patch = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    cluster.json_patch("apps/v1", "Deployment", name, namespace, patch)
    return Rollback(name, revision, skipped=False)


def _revision_replica_set(
    cluster: Cluster, deployment: dict[str, Any], to_revision: int
) -> dict[str, Any]:
    name = deployment["metadata"]["name"]
    namespace = deployment["metadata"]["namespace"]
    selector = ",".join(
        f"{key}={value}"
        for key, value in deployment["spec"]["selector"].get("matchLabels", {}).items()
    )
    owned = [
        rs
        for rs in cluster.list_objects("apps/v1", "ReplicaSet", namespace, selector)
        if any(
            ref.get("uid") == deployment["metadata"].get("uid")
            for ref in rs["metadata"].get("ownerReferences") or []
        )
    ]
    if to_revision:
        for rs in owned:
            if _revision(rs) == to_revision:
                found: dict[str, Any] = rs
                return found
        raise ClusterError(f"deployment/{name} has no revision {to_revision}")
    current = [
        rs for rs in owned if _same_template(rs["spec"]["template"], deployment["spec"]["template"])
    ]
    older = [rs for rs in owned if rs not in current]
    if not older:
        raise ClusterError(f"deployment/{name} has no earlier revision to roll back to")
    return max(older, key=_revision)


def _revision(replica_set: dict[str, Any]) -> int:
    value = (replica_set["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "0")
    try:
        return int(value)
    except ValueError:
        return 0


def _same_template(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Pod templates equal apart from the pod-template-hash label (EqualIgnoreHash)."""

    def without_hash(template: dict[str, Any]) -> dict[str, Any]:
        template = copy.deepcopy(template)
        template.get("metadata", {}).get("labels", {}).pop(POD_TEMPLATE_HASH, None)
        return template

    return without_hash(a) == without_hash(b)


# -- helpers --------------------------------------------------------------------------------


def _api_message(error: Any) -> str:
    """The `message` of the API's Status answer, else the HTTP status line."""
    body = getattr(error, "body", None) or getattr(error, "summary", lambda: "")()
    try:
        status = json.loads(body)
        message = status.get("message") if isinstance(status, dict) else None
    except (TypeError, ValueError):
        message = None
    code = getattr(error, "status", "?")
    return f"{message or _one_line(error)} (HTTP {code})"


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
