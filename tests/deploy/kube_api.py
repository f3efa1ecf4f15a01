"""A stand-in for the Kubernetes API server, for tests: no cluster runs on these machines.

It is a real HTTP server on 127.0.0.1 that answers the calls `weavenn k8s` makes the way the
Kubernetes API documents them:

- discovery: `GET /version`, `/apis` (APIGroupList), `/api/v1` and `/apis/GROUP/VERSION`
  (APIResourceList);
- objects: GET (one, or a list filtered by `labelSelector`), DELETE, and PATCH as
  server-side apply (`application/apply-patch+yaml`, `fieldManager` required, `force`,
  `dryRun=All`, 409 Conflict when another manager owns a field with a different value) or as
  a JSON patch (`application/json-patch+json`), with Status objects for errors;
- bearer-token authentication (401 without it);
- a minimal Deployment controller: a new pod template makes a ReplicaSet with the next
  `deployment.kubernetes.io/revision` (or revives the one with that template), as the
  controller manager does, and the rollout completes at once.

Field ownership is tracked per leaf path (lists are atomic): enough to show the conflict a
rollback leaves behind, not a full implementation of structured merge.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

TOKEN = "stand-in-token"
REVISION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class Kind:
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS = (
    Kind("Namespace", "", "v1", "namespaces", namespaced=False),
    Kind("ConfigMap", "", "v1", "configmaps"),
    Kind("Secret", "", "v1", "secrets"),
    Kind("Service", "", "v1", "services"),
    Kind("ServiceAccount", "", "v1", "serviceaccounts"),
    Kind("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims"),
    Kind("Deployment", "apps", "v1", "deployments"),
    Kind("StatefulSet", "apps", "v1", "statefulsets"),
    Kind("ReplicaSet", "apps", "v1", "replicasets"),
    Kind("Job", "batch", "v1", "jobs"),
    Kind("Role", "rbac.authorization.k8s.io", "v1", "roles"),
    Kind("RoleBinding", "rbac.authorization.k8s.io", "v1", "rolebindings"),
    Kind("Ingress", "networking.k8s.io", "v1", "ingresses"),
    Kind("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers"),
    Kind("PodDisruptionBudget", "policy", "v1", "poddisruptionbudgets"),
)
IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any = None


@dataclass
class Stored:
    body: dict[str, Any]
    owners: dict[tuple[str, ...], set[str]] = field(default_factory=dict)


class KubeApiStandIn:
    """The store and the API logic; `serve()` puts it behind an HTTP server."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Stored] = {}  # (plural, namespace, name)
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._versions = itertools.count(1000)
        self._uids = itertools.count(1)

    # -- helpers for tests ------------------------------------------------------------------

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if a controller had created it (no ownership, no side effects)."""
        kind = _kind(body["kind"])
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta["resourceVersion"] = str(next(self._versions))
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", "2024-01-01T00:00:00Z")
        self.objects[(kind.plural, meta.get("namespace", ""), meta["name"])] = Stored(body)
        return body

    def object(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        stored = self.objects.get((_kind(kind).plural, namespace, name))
        return copy.deepcopy(stored.body) if stored else None

    def names(self, kind: str) -> list[str]:
        plural = _kind(kind).plural
        return sorted(name for (p, _, name) in self.objects if p == plural)

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method in ("PATCH", "DELETE", "POST", "PUT")]

    # -- the API ----------------------------------------------------------------------------

    def handle(self, request: Request) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append(request)
            discovery = self._discovery(request.path)
            if discovery is not None:
                return 200, discovery
            kind, namespace, name = _route(request.path)
            if request.method == "GET":
                return 200, self._get(kind, namespace, name, request.query)
            if name is None:
                raise ApiError(405, "MethodNotAllowed", f"{request.method} on a collection")
            if request.method == "PATCH":
                return self._patch(kind, namespace, name, request)
            if request.method == "DELETE":
                return 200, self._delete(kind, namespace, name, request.query)
            raise ApiError(405, "MethodNotAllowed", f"{request.method} is not served here")

    def _discovery(self, path: str) -> dict[str, Any] | None:
        if path == "/version":
            return {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/apis":
            groups = sorted({(k.group, k.version) for k in KINDS if k.group})
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": group,
                        "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                        "preferredVersion": {
                            "groupVersion": f"{group}/{version}",
                            "version": version,
                        },
                    }
                    for group, version in groups
                ],
            }
        for group_version in {k.api_version for k in KINDS}:
            prefix = "/api/" if "/" not in group_version else "/apis/"
            if path == prefix + group_version:
                return {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": group_version,
                    "resources": [
                        {
                            "name": k.plural,
                            "singularName": k.kind.lower(),
                            "namespaced": k.namespaced,
                            "kind": k.kind,
                            "verbs": ["get", "list", "patch", "delete", "create", "update"],
                        }
                        for k in KINDS
                        if k.api_version == group_version
                    ],
                }
        return None

    def _get(
        self, kind: Kind, namespace: str, name: str | None, query: dict[str, str]
    ) -> dict[str, Any]:
        if name is not None:
            return copy.deepcopy(self._existing(kind, namespace, name).body)
        wanted = _parse_selector(query.get("labelSelector", ""))
        items = [
            copy.deepcopy(stored.body)
            for (plural, ns, _), stored in sorted(self.objects.items())
            if plural == kind.plural
            and ns == namespace
            and all(
                (stored.body["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items()
            )
        ]
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": str(next(self._versions))},
            "items": items,
        }

    def _existing(self, kind: Kind, namespace: str, name: str) -> Stored:
        stored = self.objects.get((kind.plural, namespace, name))
        if stored is None:
            resource = kind.plural + (f".{kind.group}" if kind.group else "")
            raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
        return stored

    def _delete(
        self, kind: Kind, namespace: str, name: str, query: dict[str, str]
    ) -> dict[str, Any]:
        self._existing(kind, namespace, name)
        if query.get("dryRun") != "All":
            del self.objects[(kind.plural, namespace, name)]
        return {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}

    def _patch(
        self, kind: Kind, namespace: str, name: str, request: Request
    ) -> tuple[int, dict[str, Any]]:
        dry_run = request.query.get("dryRun") == "All"
        if request.content_type.startswith("application/apply-patch+yaml"):
            manager = request.query.get("fieldManager")
            if not manager:
                raise ApiError(
                    400, "BadRequest", "PATCH: fieldManager is required for apply requests"
                )
            force = request.query.get("force") in ("true", "True")
            created, stored = self._apply(kind, namespace, name, request.body, manager, force)
        elif request.content_type.startswith("application/json-patch+json"):
            manager = request.query.get("fieldManager", "unknown")
            created, stored = False, self._json_patch(kind, namespace, name, request.body, manager)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the media type {request.content_type!r} is not supported",
            )
        if not dry_run:
            self._store(kind, namespace, name, stored)
        return (201 if created else 200), copy.deepcopy(stored.body)

    def _apply(
        self, kind: Kind, namespace: str, name: str, config: Any, manager: str, force: bool
    ) -> tuple[bool, Stored]:
        if not isinstance(config, dict) or config.get("kind") != kind.kind:
            raise ApiError(400, "BadRequest", "the applied object does not match the URL's kind")
        if config.get("metadata", {}).get("name") != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        existing = self.objects.get((kind.plural, namespace, name))
        live = copy.deepcopy(existing.body) if existing else {}
        owners = copy.deepcopy(existing.owners) if existing else {}
        applied = {p: v for p, v in _leaves(config).items() if p not in IDENTITY}
        conflicts = sorted(
            ".".join(path)
            for path, value in applied.items()
            if _lookup(live, path) not in (None, value) and owners.get(path, set()) - {manager}
        )
        if conflicts and not force:
            holders = sorted({m for p in applied for m in owners.get(p, set()) - {manager}})
            raise ApiError(
                409,
                "Conflict",
                f"Apply failed with {len(conflicts)} conflict(s): conflict with "
                f"{', '.join(repr(h) for h in holders)}: .{', .'.join(conflicts)}",
            )
        for path, holders in list(owners.items()):
            if manager in holders and path not in applied:
                holders.discard(manager)
                if not holders:
                    _remove(live, path)
                    del owners[path]
        body = live or {"apiVersion": config["apiVersion"], "kind": kind.kind, "metadata": {}}
        for path, value in applied.items():
            unchanged = _lookup(body, path) == value
            _assign(body, path, copy.deepcopy(value))
            shared = owners.get(path, set()) if unchanged and not force else set()
            owners[path] = shared | {manager}
        body["metadata"]["name"] = name
        if kind.namespaced:
            body["metadata"]["namespace"] = namespace
        return existing is None, Stored(body, owners)

    def _json_patch(
        self, kind: Kind, namespace: str, name: str, operations: Any, manager: str
    ) -> Stored:
        existing = self._existing(kind, namespace, name)
        body = copy.deepcopy(existing.body)
        for op in operations:
            path = tuple(part for part in op["path"].split("/") if part)
            if op["op"] in ("replace", "add"):
                _assign(body, path, copy.deepcopy(op["value"]))
            elif op["op"] == "remove":
                _remove(body, path)
            else:
                raise ApiError(422, "Invalid", f"unsupported patch operation {op['op']}")
        before, after = _leaves(existing.body), _leaves(body)
        owners = copy.deepcopy(existing.owners)
        for path in set(before) | set(after):
            if before.get(path) != after.get(path):
                owners[path] = {manager}
        return Stored(body, owners)

    def _store(self, kind: Kind, namespace: str, name: str, stored: Stored) -> None:
        previous = self.objects.get((kind.plural, namespace, name))
        meta = stored.body["metadata"]
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta.setdefault("creationTimestamp", "2024-01-01T00:00:00Z")
        meta["resourceVersion"] = str(next(self._versions))
        spec_changed = previous is None or previous.body.get("spec") != stored.body.get("spec")
        meta["generation"] = int(meta.get("generation", 0)) + (1 if spec_changed else 0)
        meta["managedFields"] = [
            {
                "manager": m,
                "operation": "Apply",
                "apiVersion": kind.api_version,
                "fieldsType": "FieldsV1",
                "fieldsV1": {},
            }
            for m in sorted({m for holders in stored.owners.values() for m in holders})
        ]
        self.objects[(kind.plural, namespace, name)] = stored
        if kind.kind == "Deployment" and spec_changed:
            self._roll_out(stored.body)

    def _roll_out(self, deployment: dict[str, Any]) -> None:
        """What the Deployment controller does: one ReplicaSet per pod template, revisions."""
        meta, spec = deployment["metadata"], deployment["spec"]
        namespace = meta["namespace"]
        owned = [
            stored.body
            for (plural, ns, _), stored in self.objects.items()
            if plural == "replicasets"
            and ns == namespace
            and any(
                ref.get("uid") == meta["uid"]
                for ref in stored.body["metadata"].get("ownerReferences", [])
            )
        ]
        revisions = [int(rs["metadata"].get("annotations", {}).get(REVISION, 0)) for rs in owned]
        template_hash = hashlib.sha256(
            json.dumps(spec["template"], sort_keys=True).encode()
        ).hexdigest()[:10]
        current = next(
            (rs for rs in owned if _strip_hash(rs["spec"]["template"]) == spec["template"]), None
        )
        if current is None or int(current["metadata"]["annotations"][REVISION]) != max(
            revisions, default=0
        ):
            revision = str(max(revisions, default=0) + 1)
            if current is None:
                template = copy.deepcopy(spec["template"])
                template.setdefault("metadata", {}).setdefault("labels", {})[
                    "pod-template-hash"
                ] = template_hash
                current = self.put(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "metadata": {
                            "name": f"{meta['name']}-{template_hash}",
                            "namespace": namespace,
                            "labels": dict(template["metadata"]["labels"]),
                            "annotations": {REVISION: revision},
                            "ownerReferences": [
                                {
                                    "apiVersion": "apps/v1",
                                    "kind": "Deployment",
                                    "name": meta["name"],
                                    "uid": meta["uid"],
                                    "controller": True,
                                }
                            ],
                        },
                        "spec": {
                            "replicas": spec.get("replicas", 1),
                            "selector": spec["selector"],
                            "template": template,
                        },
                    }
                )
            else:
                stored_rs = self.objects[("replicasets", namespace, current["metadata"]["name"])]
                stored_rs.body["metadata"]["annotations"][REVISION] = revision
            meta.setdefault("annotations", {})[REVISION] = revision
        replicas = spec.get("replicas", 1)
        deployment["status"] = {
            "observedGeneration": meta["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ],
        }


# -- paths, selectors, leaves -----------------------------------------------------------------


def _kind(kind: str) -> Kind:
    return next(k for k in KINDS if k.kind == kind)


def _route(path: str) -> tuple[Kind, str, str | None]:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group_version, rest = "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    for kind in KINDS:
        if kind.api_version == group_version and rest and kind.plural == rest[0]:
            return kind, namespace, rest[1] if len(rest) > 1 else None
    raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")


def _parse_selector(selector: str) -> dict[str, str]:
    return dict(term.split("=", 1) for term in selector.split(",") if term)


def _leaves(obj: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(obj, dict) and obj:
        found: dict[tuple[str, ...], Any] = {}
        for key, value in obj.items():
            found.update(_leaves(value, (*prefix, key)))
        return found
    return {prefix: obj} if prefix else {}


def _lookup(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _assign(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        obj = obj.setdefault(part, {})
    obj[path[-1]] = value


def _remove(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    parents = []
    for part in path[:-1]:
        if part not in obj:
            return
        parents.append((obj, part))
        obj = obj[part]
    obj.pop(path[-1], None)
    for parent, part in reversed(parents):  # drop mappings left empty
        if parent[part] == {}:
            del parent[part]


def _strip_hash(template: dict[str, Any]) -> dict[str, Any]:
    template = copy.deepcopy(template)
    template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    return template


def _parse_body(raw: bytes) -> Any:
    """Clients send JSON (which is YAML) even for apply-patch+yaml; real YAML is accepted too."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return yaml.safe_load(raw)


# -- the HTTP server -------------------------------------------------------------------------


def _handler(api: KubeApiStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # one response, no 40 ms delayed-ACK stalls

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    raise ApiError(401, "Unauthorized", "Unauthorized")
                request = Request(
                    self.command,
                    url.path,
                    {k: v[-1] for k, v in parse_qs(url.query).items()},
                    self.headers.get("Content-Type", ""),
                    _parse_body(raw),
                )
                code, body = api.handle(request)
            except ApiError as error:
                code, body = error.code, error.status()
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _serve

    return Handler


@dataclass
class RunningApi:
    api: KubeApiStandIn
    url: str

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig whose current context points at this server."""
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "stand-in", "cluster": {"server": self.url}}],
                    "users": [{"name": "tester", "user": {"token": TOKEN}}],
                    "contexts": [
                        {"name": "stand-in", "context": {"cluster": "stand-in", "user": "tester"}}
                    ],
                    "current-context": "stand-in",
                }
            )
        )
        return path


def serve() -> Iterator[RunningApi]:
    """Start the stand-in on a free port of 127.0.0.1; stop it when the generator closes."""
    api = KubeApiStandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningApi(api, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
