"""`weavenn k8s render`: golden output per environment, determinism, the objects the issue asks
for, and no secret value unless asked for."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import assert_golden
from weavenn_cli.runtime.deploy import k8s
from weavenn_cli.runtime.deploy.templating import TemplateError, render_text
from weavenn_cli.runtime.deploy.values import load_values

GOLDEN = Path(__file__).parent / "golden"
ENVIRONMENTS = ("dev", "staging", "prod")
SECRETS = {
    "DATABASE_URL": "postgresql://weave:pg-S3CRET-value@postgres:5432/weave_nn",
    "RABBITMQ_URL": "amqp://weave:mq-S3CRET-value@rabbitmq:5672/",
    "POSTGRES_PASSWORD": "pg-S3CRET-value",
    "RABBITMQ_PASSWORD": "mq-S3CRET-value",
    "RABBITMQ_ERLANG_COOKIE": "cookie-S3CRET-value",
    "OBSIDIAN_API_KEY": "obsidian-S3CRET-value",
    "CLAUDE_API_KEY": "sk-ant-S3CRET-value",
    "API_KEY": "api-S3CRET-value",
}


def rendered(environment: str, *sets: str) -> list[k8s.Manifest]:
    return k8s.render(load_values(environment, sets=list(sets)), environment)


def objects(manifests: list[k8s.Manifest], kind: str) -> dict[str, dict[str, Any]]:
    return {m.name: m.body for m in manifests if m.kind == kind}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_rendered_stream_matches_the_golden_file(
    environment: str, run_weavenn, update_golden
) -> None:
    result = run_weavenn("k8s", "render", "--env", environment)
    assert result.returncode == 0, result.stderr
    assert_golden(GOLDEN / f"k8s-{environment}.yaml", result.stdout, update_golden)


def test_rendering_twice_gives_the_same_bytes_on_stdout_and_in_a_folder(
    run_weavenn, invoke, tmp_path: Path
) -> None:
    first = run_weavenn("k8s", "render", "--env", "prod").stdout
    second = run_weavenn("k8s", "render", "--env", "prod").stdout
    assert first == second != ""
    run_weavenn("k8s", "render", "--env", "prod", "--output", str(tmp_path / "a"), check=True)
    invoke("k8s", "render", "--env", "prod", "--output", str(tmp_path / "b"), check=True)
    files_a = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files_a == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # The folder holds the same objects as the stream, one per file named kind-name.
    assert "deployment-task-service.yaml" in files_a
    stream = [doc for doc in yaml.safe_load_all(first) if doc]
    assert len(stream) == len(files_a)


def test_folder_output_drops_files_of_objects_no_longer_rendered(invoke, tmp_path: Path) -> None:
    out = tmp_path / "out"
    invoke("k8s", "render", "--env", "dev", "--output", str(out), check=True)
    old_jobs = sorted(p.name for p in out.glob("job-*.yaml"))
    mine = out / "notes.yaml"
    mine.write_text("someone: else\n")
    invoke(
        "k8s",
        "render",
        "--env",
        "dev",
        "--set",
        "image.tag=9.9.9",
        "--output",
        str(out),
        check=True,
    )
    new_jobs = sorted(p.name for p in out.glob("job-*.yaml"))
    assert len(old_jobs) == len(new_jobs) == 1 and old_jobs != new_jobs
    assert mine.exists()  # not ours: left alone


def test_objects_are_in_dependency_order() -> None:
    kinds = [m.kind for m in rendered("prod")]
    first = {kind: kinds.index(kind) for kind in dict.fromkeys(kinds)}
    assert kinds[0] == "Namespace"
    assert first["ConfigMap"] < first["PersistentVolumeClaim"] < first["StatefulSet"]
    assert first["StatefulSet"] < first["Deployment"] < first["Ingress"]
    assert kinds[-1] == "Job"


def test_namespace_and_labels() -> None:
    manifests = rendered("staging")
    assert objects(manifests, "Namespace").keys() == {"weave-nn-staging"}
    for manifest in manifests:
        labels = manifest.body["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "weave-nn-staging"
        assert labels["app.kubernetes.io/managed-by"] == "weavenn"
        assert labels["app.kubernetes.io/part-of"] == "weave-nn"
        assert {
            "app.kubernetes.io/name",
            "app.kubernetes.io/version",
            "app.kubernetes.io/component",
        } <= labels.keys()
        if manifest.kind != "Namespace":
            assert manifest.namespace == "weave-nn-staging"


EXPECTED_COMMANDS = {
    "monolith": ["serve", "--host", "0.0.0.0", "--port", "8000"],
    "gateway": ["serve", "gateway", "--host", "0.0.0.0", "--port", "8080"],
    "task-service": ["serve", "task-service", "--host", "0.0.0.0", "--port", "8003"],
    "file-service": ["serve", "file-service", "--host", "0.0.0.0", "--port", "8001"],
    "git-service": ["serve", "git-service", "--host", "0.0.0.0", "--port", "8002"],
    "watcher": ["watch", "--no-relay"],
    "relay": ["relay"],
    "mcp-sync": ["consume", "mcp-sync", "--metrics-port", "9100"],
    "git-auto-commit": ["consume", "git-auto-commit", "--metrics-port", "9100"],
    "agent-tasks": ["consume", "agent-tasks", "--metrics-port", "9100"],
    "n8n-workflows": ["consume", "n8n-workflows", "--metrics-port", "9100"],
}


def test_a_deployment_per_process_running_the_one_image() -> None:
    deployments = objects(rendered("prod"), "Deployment")
    assert deployments.keys() == EXPECTED_COMMANDS.keys()
    for name, body in deployments.items():
        container = body["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == load_values("prod").image.ref
        assert container["args"] == EXPECTED_COMMANDS[name]


def test_deployments_roll_one_at_a_time_with_resources_and_non_root() -> None:
    for name, body in objects(rendered("prod"), "Deployment").items():
        spec = body["spec"]
        assert spec["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1},
        }, name
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        container = pod["containers"][0]
        assert container["resources"] == {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        }
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_http_services_have_probes_ports_and_a_cluster_ip_service() -> None:
    manifests = rendered("dev")
    services = objects(manifests, "Service")
    ports = {
        "monolith": 8000,
        "gateway": 8080,
        "task-service": 8003,
        "file-service": 8001,
        "git-service": 8002,
    }
    for name, port in ports.items():
        deployment = objects(manifests, "Deployment")[name]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["ports"][0]["containerPort"] == port
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert services[name]["spec"]["type"] == "ClusterIP"
        assert services[name]["spec"]["ports"][0]["port"] == port
        assert deployment["spec"]["replicas"] == 1


def test_vault_access_per_process() -> None:
    def vault_mount(body: dict[str, Any]) -> dict[str, Any] | None:
        mounts = body["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        return next((m for m in mounts if m["name"] == "vault"), None)

    deployments = objects(rendered("dev"), "Deployment")
    assert vault_mount(deployments["watcher"]) == {
        "name": "vault",
        "mountPath": "/vault",
        "readOnly": True,
    }
    assert vault_mount(deployments["git-auto-commit"])["readOnly"] is False
    assert vault_mount(deployments["mcp-sync"]) is None  # everything it needs is in the event


def test_secrets_are_referenced_as_the_design_names_them() -> None:
    deployment = objects(rendered("prod"), "Deployment")["task-service"]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "postgres-secret",
        "key": "database-url",
    }
    assert env["RABBITMQ_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "rabbitmq-secret",
        "key": "rabbitmq-url",
    }
    assert env["OBSIDIAN_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "obsidian-secret",
        "key": "api-key",
        "optional": True,
    }


def test_no_secret_value_in_any_rendered_file(run_weavenn, invoke, tmp_path: Path) -> None:
    for environment in ENVIRONMENTS:
        result = invoke("k8s", "render", "--env", environment, env=SECRETS)
        assert result.returncode == 0, result.stderr
        assert "S3CRET" not in result.stdout
        assert "kind: Secret" not in result.stdout
    run_weavenn(
        "k8s", "render", "--env", "prod", "--output", str(tmp_path / "out"), env=SECRETS, check=True
    )
    for path in (tmp_path / "out").iterdir():
        assert "S3CRET" not in path.read_text(), path.name


def test_include_secrets_renders_them_from_the_environment_and_only_in_secrets(invoke) -> None:
    result = invoke("k8s", "render", "--env", "prod", "--include-secrets", env=SECRETS)
    assert result.returncode == 0, result.stderr
    documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    secrets = {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "Secret"}
    decoded = base64.b64decode(secrets["postgres-secret"]["database-url"]).decode()
    assert decoded == SECRETS["DATABASE_URL"]
    assert set(secrets) == {
        "postgres-secret",
        "rabbitmq-secret",
        "obsidian-secret",
        "claude-secret",
        "api-secret",
    }
    others = yaml.safe_dump_all([d for d in documents if d["kind"] != "Secret"])
    assert "S3CRET" not in others


def test_include_secrets_without_the_variable_names_it(run_weavenn) -> None:
    result = run_weavenn("k8s", "render", "--include-secrets")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --include-secrets: DATABASE_URL is not set (it fills "
        "postgres-secret/database-url); export it or render without --include-secrets"
    )


def test_statefulsets_keep_their_data_in_claims() -> None:
    statefulsets = objects(rendered("prod"), "StatefulSet")
    assert statefulsets.keys() == {"postgres", "rabbitmq", "redis"}
    postgres = statefulsets["postgres"]["spec"]
    container = postgres["template"]["spec"]["containers"][0]
    assert container["image"] == "postgres:15"
    assert {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"} in container["env"]
    assert postgres["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert statefulsets["rabbitmq"]["spec"]["replicas"] == 3
    for body in statefulsets.values():
        assert body["spec"]["volumeClaimTemplates"], body["metadata"]["name"]


def test_ingress_routes_tls_and_rate_limit() -> None:
    ingress = objects(rendered("prod"), "Ingress")["weave-nn"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert annotations["nginx.ingress.kubernetes.io/limit-rps"] == "100"
    assert ingress["spec"]["tls"] == [{"hosts": ["api.weave-nn.com"], "secretName": "weave-nn-tls"}]
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "api.weave-nn.com"
    routes = {
        p["path"]: (p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
        for p in rule["http"]["paths"]
    }
    assert routes == {
        "/tasks": ("task-service", 8003),
        "/files": ("file-service", 8001),
        "/": ("monolith", 8000),
    }
    dev = objects(rendered("dev", "ingress.host=weave.test"), "Ingress")["weave-nn"]
    assert "tls" not in dev["spec"] and dev["spec"]["rules"][0]["host"] == "weave.test"


def test_autoscalers_and_disruption_budgets_are_on_in_prod_only() -> None:
    prod, dev = rendered("prod"), rendered("dev")
    http = {"monolith", "gateway", "task-service", "file-service", "git-service"}
    assert objects(prod, "HorizontalPodAutoscaler").keys() == http
    assert objects(prod, "PodDisruptionBudget").keys() == http
    assert not objects(dev, "HorizontalPodAutoscaler") and not objects(dev, "PodDisruptionBudget")
    hpa = objects(prod, "HorizontalPodAutoscaler")["task-service"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    # The autoscaler owns the replica count: the Deployment does not fight it on every apply.
    assert "replicas" not in objects(prod, "Deployment")["task-service"]["spec"]
    assert objects(prod, "Deployment")["mcp-sync"]["spec"]["replicas"] == 2


def test_migrate_job_is_named_after_its_content_and_gates_the_new_pods() -> None:
    jobs = objects(rendered("prod"), "Job")
    ((name, job),) = jobs.items()
    assert name.startswith("migrate-")
    assert job["spec"]["backoffLimit"] == 3 and job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate", "db"]
    assert objects(rendered("prod"), "Job").keys() == {name}  # same input, same name
    assert objects(rendered("prod", "image.tag=2.0.0"), "Job").keys() != {name}
    init = objects(rendered("prod"), "Deployment")["relay"]["spec"]["template"]["spec"][
        "initContainers"
    ][0]
    assert (
        init["name"] == "wait-for-schema"
        and "weavenn migrate current --json" in init["command"][-1]
    )


def test_disabled_components_are_not_rendered() -> None:
    manifests = rendered(
        "dev", "services.gateway.enabled=false", "postgres.enabled=false", "ingress.enabled=false"
    )
    names = {m.ref for m in manifests}
    assert "deployment/gateway" not in names and "service/gateway" not in names
    assert "statefulset/postgres" not in names and "ingress/weave-nn" not in names


def test_set_of_an_unknown_key_fails_clearly_through_the_command(run_weavenn) -> None:
    result = run_weavenn("k8s", "render", "--set", "ingres.host=x")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: unknown value ingres (from --set ingres.host=x)"
    )
    assert result.stdout == ""


def test_a_missing_template_variable_names_the_template_and_the_variable() -> None:
    with pytest.raises(
        TemplateError, match=r"template k8s/storage\.yaml\.j2 line \d+: 'namespace' is undefined"
    ):
        render_text("k8s/storage.yaml.j2", {"values": load_values(), "labels": lambda *a: {}})
    with pytest.raises(
        TemplateError,
        match=r"template k8s/ingress\.yaml\.j2 line 2: 'dict object' has no attribute 'enabled'",
    ):
        render_text("k8s/ingress.yaml.j2", {"values": {"ingress": {"hots": 1}}})
