"""`weavenn k8s diff|apply|status|rollback` against a stand-in for the Kubernetes API server.

No cluster runs on these machines: `tests/deploy/kube_api.py` is a real HTTP server on
127.0.0.1, started by these tests, that answers the calls weavenn makes (discovery, GET/LIST,
server-side apply PATCH with application/apply-patch+yaml, dry-run, JSON patch, DELETE) as the
Kubernetes API documents them. The client finds it through a kubeconfig the test writes.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.deploy.kube_api import RunningApi

NAMESPACE = "weave-nn-dev"


def test_apply_is_server_side_apply_in_dependency_order(kube_api: RunningApi, run_weavenn) -> None:
    result = run_weavenn("k8s", "apply", "--env", "dev")
    assert result.returncode == 0, result.stderr
    patches = [r for r in kube_api.api.writes() if r.method == "PATCH"]
    assert {r.content_type for r in patches} == {"application/apply-patch+yaml"}
    assert {r.query.get("fieldManager") for r in patches} == {"weavenn"}
    assert all("dryRun" not in r.query and "force" not in r.query for r in patches)
    kinds = [r.body["kind"] for r in patches]
    assert kinds[0] == "Namespace" and kinds[-1] == "Job"
    assert (
        kinds.index("ConfigMap") < kinds.index("PersistentVolumeClaim") < kinds.index("StatefulSet")
    )
    assert max(i for i, k in enumerate(kinds) if k == "StatefulSet") < kinds.index("Deployment")
    lines = result.stdout.splitlines()
    assert lines[0] == "namespace/weave-nn-dev created"
    assert "deployment/task-service created" in lines
    assert kube_api.api.object("Deployment", "task-service", NAMESPACE)["spec"]["replicas"] == 1

    again = run_weavenn("k8s", "apply", "--env", "dev")
    assert again.returncode == 0, again.stderr
    assert set(line.rsplit(" ", 1)[1] for line in again.stdout.splitlines()) == {"unchanged"}


def test_diff_exits_0_without_changes_1_with_changes(kube_api: RunningApi, invoke) -> None:
    first = invoke("k8s", "diff", "--env", "dev")
    assert first.returncode == 1  # nothing there yet: everything is new
    assert "+++ merged/namespace/weave-nn-dev" in first.stdout
    assert kube_api.api.names("Deployment") == []  # diff never writes
    assert {r.query.get("dryRun") for r in kube_api.api.writes()} == {"All"}

    invoke("k8s", "apply", "--env", "dev", check=True)
    same = invoke("k8s", "diff", "--env", "dev")
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout == ""
    assert same.stderr.strip().endswith("0 of 32 objects would change")

    changed = invoke("k8s", "diff", "--env", "dev", "--set", "services.task_service.replicas=2")
    assert changed.returncode == 1
    assert "--- live/deployment/task-service" in changed.stdout
    assert "-  replicas: 1\n+  replicas: 2\n" in changed.stdout
    assert "deployment/monolith" not in changed.stdout


def test_dry_runs_change_nothing(kube_api: RunningApi, invoke) -> None:
    client = invoke("k8s", "apply", "--env", "dev", "--dry-run", "client")
    assert client.returncode == 0, client.stderr
    assert client.stdout.splitlines()[0] == "namespace/weave-nn-dev (dry run: client, not sent)"
    assert kube_api.api.requests == []

    server = invoke("k8s", "apply", "--env", "dev", "--dry-run", "server")
    assert server.returncode == 0, server.stderr
    assert "deployment/relay created (dry run: server)" in server.stdout.splitlines()
    assert {r.query.get("dryRun") for r in kube_api.api.writes()} == {"All"}
    assert kube_api.api.names("Deployment") == []


def test_prune_deletes_what_is_no_longer_rendered(kube_api: RunningApi, invoke) -> None:
    invoke("k8s", "apply", "--env", "dev", check=True)
    stranger = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "not-ours", "namespace": NAMESPACE, "labels": {"team": "other"}},
    }
    kube_api.api.put(stranger)
    result = invoke(
        "k8s", "apply", "--env", "dev", "--prune", "--set", "services.gateway.enabled=false"
    )
    assert result.returncode == 0, result.stderr
    assert "deployment/gateway pruned" in result.stdout.splitlines()
    assert "service/gateway pruned" in result.stdout.splitlines()
    assert "gateway" not in kube_api.api.names("Deployment")
    assert "not-ours" in kube_api.api.names("ConfigMap")
    assert "task-service" in kube_api.api.names("Deployment")


def test_prune_refuses_manifests_of_another_environment(
    kube_api: RunningApi, invoke, tmp_path: Path
) -> None:
    invoke("k8s", "render", "--env", "prod", "--output", str(tmp_path / "prod"), check=True)
    result = invoke("k8s", "apply", "--from", str(tmp_path / "prod"), "--prune")  # --env dev
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --prune: these manifests are not all for namespace weave-nn-dev; pass --env"
    )
    assert kube_api.api.requests == []


def test_status_shows_each_rollout(kube_api: RunningApi, invoke, run_weavenn) -> None:
    invoke("k8s", "apply", "--env", "dev", check=True)
    stuck = kube_api.api.object("Deployment", "task-service", NAMESPACE)
    stuck["spec"]["replicas"] = 3
    stuck["status"] = {
        "observedGeneration": stuck["metadata"]["generation"],
        "replicas": 3,
        "updatedReplicas": 1,
        "readyReplicas": 2,
        "availableReplicas": 2,
    }
    kube_api.api.put(stuck)
    result = invoke("k8s", "status", "--env", "dev", "--json")
    assert result.returncode == 0, result.stderr
    states = {(s["kind"], s["name"]): s for s in json.loads(result.stdout)}
    assert states[("Deployment", "task-service")]["state"] == "progressing: 1/3 updated"
    assert states[("Deployment", "relay")]["state"] == "rolled out"
    assert states[("StatefulSet", "postgres")]["done"] is False  # no controller has seen it
    # The table through the installed command: its console is as wide as COLUMNS says.
    table = run_weavenn("k8s", "status", "--env", "dev")
    assert "progressing: 1/3 updated" in table.stdout


def image_of(api: RunningApi, name: str) -> str:
    deployment = api.api.object("Deployment", name, NAMESPACE)
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def test_rollback_restores_the_previous_template_like_kubectl(kube_api: RunningApi, invoke) -> None:
    for tag in ("1.0.0", "1.1.0", "1.2.0"):
        invoke(
            "k8s",
            "apply",
            "--env",
            "dev",
            "--set",
            f"image.tag={tag}",
            "--force-conflicts",
            check=True,
        )
    assert image_of(kube_api, "task-service") == "weave-nn/weavenn:1.2.0"
    revision = kube_api.api.object("Deployment", "task-service", NAMESPACE)["metadata"][
        "annotations"
    ]
    assert revision["deployment.kubernetes.io/revision"] == "3"

    result = invoke("k8s", "rollback", "task-service", "--env", "dev")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deployment/task-service rolled back to revision 2"
    assert image_of(kube_api, "task-service") == "weave-nn/weavenn:1.1.0"
    patch = kube_api.api.writes()[-1]
    assert (patch.method, patch.content_type) == ("PATCH", "application/json-patch+json")
    assert [op["path"] for op in patch.body] == ["/spec/template", "/metadata/annotations"]
    assert "pod-template-hash" not in patch.body[0]["value"]["metadata"]["labels"]
    # The controller revived revision 2's ReplicaSet as revision 4, as Kubernetes does.
    annotations = kube_api.api.object("Deployment", "task-service", NAMESPACE)["metadata"][
        "annotations"
    ]
    assert annotations["deployment.kubernetes.io/revision"] == "4"

    to_first = invoke("k8s", "rollback", "task-service", "--env", "dev", "--to-revision", "1")
    assert to_first.stdout.strip() == "deployment/task-service rolled back to revision 1"
    assert image_of(kube_api, "task-service") == "weave-nn/weavenn:1.0.0"

    missing = invoke("k8s", "rollback", "task-service", "--env", "dev", "--to-revision", "9")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: deployment/task-service has no revision 9"


def test_rollback_then_apply_is_a_conflict_until_forced(kube_api: RunningApi, invoke) -> None:
    for tag in ("1.0.0", "1.1.0"):
        invoke(
            "k8s",
            "apply",
            "--env",
            "dev",
            "--set",
            f"image.tag={tag}",
            "--force-conflicts",
            check=True,
        )
    invoke("k8s", "rollback", "relay", "--env", "dev", check=True)
    assert image_of(kube_api, "relay") == "weave-nn/weavenn:1.0.0"

    result = invoke("k8s", "apply", "--env", "dev", "--set", "image.tag=1.1.0")
    assert result.returncode == 1
    line = result.stderr.strip()
    assert line.startswith("error: applying deployment/relay: Apply failed with")
    assert "weavenn-rollback" in line and line.endswith(
        "re-run with --force-conflicts to take them back"
    )
    forced = invoke("k8s", "apply", "--env", "dev", "--set", "image.tag=1.1.0", "--force-conflicts")
    assert forced.returncode == 0, forced.stderr
    assert image_of(kube_api, "relay") == "weave-nn/weavenn:1.1.0"
    assert kube_api.api.writes()[-1].query["force"] == "true"


def test_rollback_of_an_unknown_deployment_or_without_history(kube_api: RunningApi, invoke) -> None:
    invoke("k8s", "apply", "--env", "dev", check=True)
    missing = invoke("k8s", "rollback", "nope", "--env", "dev")
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        "error: deployment/nope not found in namespace weave-nn-dev",
    )
    first = invoke("k8s", "rollback", "relay", "--env", "dev")
    assert (first.returncode, first.stderr.strip()) == (
        1,
        "error: deployment/relay has no earlier revision to roll back to",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", [["apply"], ["status"], ["rollback", "relay"], ["diff"]])
def test_without_a_reachable_cluster_one_clear_line(
    command: list[str], run_weavenn, tmp_path: Path, kube_api: RunningApi
) -> None:
    config = tmp_path / "unreachable"
    config.write_text(
        Path(kube_api.kubeconfig(tmp_path / "k"))
        .read_text()
        .replace(kube_api.url, f"http://127.0.0.1:{free_port()}")
    )
    result = run_weavenn("k8s", *command, env={"KUBECONFIG": str(config)})
    assert result.returncode == (2 if command == ["diff"] else 1)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach the Kubernetes API at http://127.0.0.1:")
    assert "Traceback" not in result.stderr


def test_without_any_kubeconfig_one_clear_line(run_weavenn, tmp_path: Path) -> None:
    result = run_weavenn(
        "k8s", "status", env={"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)}
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: no Kubernetes cluster configured (")
    assert result.stderr.strip().endswith("set KUBECONFIG, create ~/.kube/config or pass --context")


def test_a_refused_token_is_reported(kube_api: RunningApi, invoke, tmp_path: Path) -> None:
    config = tmp_path / "bad-token"
    config.write_text(
        Path(kube_api.kubeconfig(tmp_path / "k")).read_text().replace("stand-in-token", "wrong")
    )
    result = invoke("k8s", "status", env={"KUBECONFIG": str(config)})
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        "error: reading the API discovery: Unauthorized (HTTP 401)"
    )
