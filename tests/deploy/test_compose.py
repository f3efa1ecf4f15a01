"""`weavenn compose`: docker-compose.yml and .env.example for one machine, checked against the
Compose specification's JSON schema (the copy check-jsonschema vendors: no network), and the
docker commands failing cleanly where no Docker engine runs (these machines)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.conftest import assert_golden
from weavenn_cli.runtime.deploy import compose
from weavenn_cli.runtime.deploy.values import load_values

GOLDEN = Path(__file__).parent / "golden"
LONG_RUNNING = {
    "rabbitmq",
    "mcp-server",
    "file-watcher",
    "relay",
    "mcp-sync",
    "git-consumer",
    "agent-tasks",
    "n8n-workflows",
    "n8n",
}
WEAVENN = LONG_RUNNING - {"rabbitmq", "n8n"}


def compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema: dict[str, Any] = json.loads(vendored.read_text(encoding="utf-8"))
    return schema


def render(*sets: str) -> compose.RenderedCompose:
    return compose.render(load_values(sets=list(sets)))


@pytest.mark.parametrize(("name", "args"), [("default", []), ("postgres", ["--with-postgres"])])
def test_rendered_files_match_the_golden_files(
    name: str, args: list[str], run_weavenn, tmp_path: Path, update_golden
) -> None:
    output = tmp_path / "stack" / "docker-compose.yml"
    result = run_weavenn("compose", "render", "--output", str(output), *args)
    assert result.returncode == 0, result.stderr
    assert_golden(GOLDEN / f"compose-{name}.yml", output.read_text(), update_golden)
    assert_golden(
        GOLDEN / f"compose-{name}.env.example",
        (output.parent / ".env.example").read_text(),
        update_golden,
    )


def test_render_to_stdout_is_the_compose_file_and_deterministic(run_weavenn) -> None:
    first = run_weavenn("compose", "render", "--output", "-")
    second = run_weavenn("compose", "render", "--output", "-")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout == render().compose
    assert not Path(".env.example").exists()


@pytest.mark.parametrize("sets", [[], ["compose.postgres=true", "compose.extracted_services=true"]])
def test_compose_file_follows_the_compose_specification(sets: list[str]) -> None:
    document = yaml.safe_load(render(*sets).compose)
    validator = jsonschema.validators.validator_for(compose_schema())(compose_schema())
    errors = sorted(validator.iter_errors(document), key=str)
    assert errors == [], [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_schema_check_would_catch_a_mistake() -> None:
    document = yaml.safe_load(render().compose)
    document["services"]["relay"]["depends_on"]["migrate"]["condition"] = "service_finished"
    validator = jsonschema.validators.validator_for(compose_schema())(compose_schema())
    assert list(validator.iter_errors(document))


def test_services_volumes_and_startup_order() -> None:
    services = yaml.safe_load(render().compose)["services"]
    assert set(services) == LONG_RUNNING | {"migrate"}
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    for name in WEAVENN:
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
    assert services["migrate"]["command"] == ["migrate", "db"]
    assert services["migrate"]["restart"] == "no"
    assert services["mcp-server"]["command"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert services["file-watcher"]["command"] == ["watch", "--no-relay"]
    assert services["git-consumer"]["command"] == [
        "consume",
        "git-auto-commit",
        "--metrics-port",
        "9100",
    ]
    assert services["file-watcher"]["volumes"] == [
        "weavenn_data:/app/data",
        "${VAULT_DIR:-./vault}:/vault:ro",
    ]
    assert services["git-consumer"]["volumes"] == [
        "weavenn_data:/app/data",
        "${VAULT_DIR:-./vault}:/vault",
    ]
    assert services["mcp-sync"]["volumes"] == ["weavenn_data:/app/data"]
    assert services["rabbitmq"]["volumes"] == ["rabbitmq_data:/var/lib/rabbitmq"]
    assert services["n8n"]["environment"]["N8N_BASIC_AUTH_PASSWORD"].startswith("${N8N_PASSWORD:?")
    assert services["n8n-workflows"]["depends_on"]["n8n"] == {"condition": "service_healthy"}
    assert "postgres" not in services
    assert (
        services["mcp-server"]["environment"]["DATABASE_URL"] == "sqlite:////app/data/weave-nn.db"
    )


def test_with_postgres_adds_it_and_everyone_waits_for_it() -> None:
    document = yaml.safe_load(render("compose.postgres=true").compose)
    services = document["services"]
    assert services["postgres"]["image"] == "postgres:15"
    assert services["postgres"]["environment"]["PGDATA"] == "/var/lib/postgresql/data/pgdata"
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in WEAVENN:
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert services[name]["environment"]["DATABASE_URL"].startswith(
            "postgresql://weave:${POSTGRES_PASSWORD}@postgres:5432/"
        )
    assert "postgres_data" in document["volumes"]


def test_env_example_lists_every_variable_and_no_secret_value() -> None:
    for sets in ([], ["compose.postgres=true"]):
        rendered = render(*sets)
        listed = {}
        for line in rendered.env_example.splitlines():
            text = line.removeprefix("# ")
            if "=" in text and text.split("=", 1)[0].isupper() and " " not in text.split("=", 1)[0]:
                name, value = text.split("=", 1)
                listed[name] = value
        assert compose.interpolated_variables(rendered.compose) <= set(listed), listed
        for variable in compose.variables(load_values()):
            if variable.secret and variable.name in listed:
                assert listed[variable.name] == "", variable.name
    assert "POSTGRES_PASSWORD" not in render().env_example


@pytest.fixture
def no_engine(tmp_path: Path) -> dict[str, str]:
    """DOCKER_HOST pointing at a socket nobody serves: what a machine without Docker sees."""
    return {"DOCKER_HOST": f"unix://{tmp_path / 'no-docker.sock'}"}


@pytest.mark.parametrize(
    "args",
    [["up"], ["up", "--build"], ["down"], ["ps"], ["logs", "relay"]],
)
def test_docker_commands_say_clearly_that_no_engine_runs(
    args: list[str], invoke, no_engine: dict[str, str]
) -> None:
    invoke("compose", "render", check=True)
    result = invoke("compose", *args, env=no_engine)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: no Docker engine answers at {no_engine['DOCKER_HOST']}: start Docker (or point "
        "DOCKER_HOST at one)"
    )


def test_docker_commands_need_the_rendered_file_and_a_known_service(run_weavenn, no_engine) -> None:
    """Through the installed command: the error lines as an operator sees them."""
    result = run_weavenn("compose", "up", env=no_engine)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: docker-compose.yml not found: run `weavenn compose render` first (or pass --file)"
    )
    run_weavenn("compose", "render", check=True)
    result = run_weavenn("compose", "logs", "nginx", env=no_engine)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "error: no service 'nginx' in docker-compose.yml: choose one of rabbitmq, migrate,"
    )
