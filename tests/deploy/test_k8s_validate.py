"""`weavenn k8s validate`: Kubernetes schemas offline (kubernetes-validate) and the project's
rules: probes on HTTP services, pinned images in prod, no secret literals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from weavenn_cli.runtime.deploy import k8s
from weavenn_cli.runtime.deploy.validate import validate
from weavenn_cli.runtime.deploy.values import load_values


def rendered_dir(run_weavenn, folder: Path, *args: str) -> Path:
    result = run_weavenn("k8s", "render", "--output", str(folder), *args)
    assert result.returncode == 0, result.stderr
    return folder


def edit(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    body = yaml.safe_load(path.read_text())
    change(body)
    path.write_text(yaml.safe_dump(body))


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_every_rendered_object_passes_the_schemas_and_the_rules(environment: str) -> None:
    manifests = k8s.render(load_values(environment), environment)
    assert validate(manifests, "1.30") == []
    assert validate(manifests, "1.25") == []  # the oldest schemas kubernetes-validate ships


def test_validate_command_checks_a_rendered_folder(run_weavenn, tmp_path: Path) -> None:
    folder = rendered_dir(run_weavenn, tmp_path / "prod", "--env", "prod")
    result = run_weavenn("k8s", "validate", str(folder), "--kube-version", "1.29")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("objects valid for Kubernetes 1.29")


def test_failures_are_listed_and_exit_1(run_weavenn, tmp_path: Path) -> None:
    folder = rendered_dir(run_weavenn, tmp_path / "prod", "--env", "prod")

    def break_task_service(body):  # type: ignore[no-untyped-def]
        container = body["spec"]["template"]["spec"]["containers"][0]
        del container["readinessProbe"]
        container["image"] = "weave-nn/weavenn:latest"
        container["env"].append({"name": "API_KEY", "value": "hunter2"})
        body["spec"]["replicas"] = "three"

    edit(folder / "deployment-task-service.yaml", break_task_service)
    edit(
        folder / "configmap-weave-nn-config.yaml",
        lambda body: body["data"].update(
            {"SECONDARY_DATABASE_URL": "postgresql://weave:pw@db/weave_nn"}
        ),
    )
    result = run_weavenn("k8s", "validate", str(folder), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["kube_version"] == "1.30"
    failures = report["failures"]
    assert any(
        f.startswith("deployment/task-service: spec.replicas: 'three' is not of type 'integer'")
        for f in failures
    ), failures
    assert (
        "deployment/task-service: container task-service serves HTTP but has no readinessProbe"
        in failures
    )
    assert (
        "deployment/task-service: container task-service uses image 'weave-nn/weavenn:latest': "
        "pin a version in prod"
    ) in failures
    assert (
        "deployment/task-service: container task-service sets API_KEY to a literal: "
        "use valueFrom.secretKeyRef"
    ) in failures
    assert (
        "configmap/weave-nn-config: data.SECONDARY_DATABASE_URL looks like a secret: "
        "move it to a Secret" in failures
    )
    assert len(failures) == 5
    assert result.stderr.strip() == "error: 5 problem(s) in 42 objects (Kubernetes 1.30)"


def test_latest_is_fine_outside_prod(invoke) -> None:
    result = invoke("k8s", "validate", "--env", "dev", "--set", "image.tag=latest")
    assert result.returncode == 0, result.stdout
    result = invoke("k8s", "validate", "--env", "prod", "--set", "image.tag=latest")
    assert result.returncode == 1
    assert "pin a version in prod" in result.stdout


def test_an_unknown_field_or_api_version_is_caught(tmp_path: Path) -> None:
    manifests = k8s.render(load_values("dev"), "dev")
    service = next(m for m in manifests if m.ref == "service/monolith")
    service.body["spec"]["clusterIp"] = "None"  # typo of clusterIP
    hpa = {
        "apiVersion": "autoscaling/v2beta2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "old", "namespace": "weave-nn-dev"},
        "spec": {},
    }
    failures = validate([service, k8s.Manifest(hpa)], "1.30")
    assert any(
        "service/monolith: spec: Additional properties are not allowed ('clusterIp'" in f
        for f in failures
    )
    assert (
        "horizontalpodautoscaler/old: no schema for HorizontalPodAutoscaler "
        "autoscaling/v2beta2 in Kubernetes 1.30" in failures
    )


def test_unsupported_kube_version_is_bad_usage(invoke) -> None:
    result = invoke("k8s", "validate", "--kube-version", "1.12")
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "error: --kube-version 1.12: schemas are available for 1.25 to"
    )


def test_a_folder_without_kubernetes_objects_is_refused(invoke, tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("hello: world\n")
    result = invoke("k8s", "validate", str(tmp_path))
    assert result.returncode == 2
    assert "holds a document that is not a Kubernetes object" in result.stderr
