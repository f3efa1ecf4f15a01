"""Values: defaults, environment files, --values, WEAVENN_VALUES__*, --set, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from weavenn_cli import __version__
from weavenn_cli.runtime.deploy.values import ENVIRONMENTS, load_values
from weavenn_cli.runtime.errors import UsageError


def test_defaults_follow_the_design() -> None:
    values = load_values()
    assert values.image.ref == f"weave-nn/weavenn:{__version__}"
    assert values.resources.requests.memory == "256Mi"
    assert values.resources.requests.cpu == "250m"
    assert values.resources.limits.memory == "512Mi"
    assert values.resources.limits.cpu == "500m"
    assert values.postgres.image == "postgres:15"
    assert values.rabbitmq.replicas == 3


def test_environment_files_set_replicas_and_optional_objects() -> None:
    dev, staging, prod = (load_values(env) for env in ENVIRONMENTS)
    assert dev.services.task_service.replicas == 1
    assert not dev.autoscaling.enabled and not dev.disruption_budget.enabled
    assert staging.services.task_service.replicas == 2
    assert prod.services.task_service.replicas == 3
    assert prod.autoscaling.enabled and prod.disruption_budget.enabled
    assert prod.ingress.tls and prod.ingress.host == "api.weave-nn.com"


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text("image: {tag: from-first}\ningress: {host: first.example}\n")
    second = tmp_path / "second.yaml"
    second.write_text("image: {tag: from-second}\n")
    environ = {
        "WEAVENN_VALUES__IMAGE__TAG": "from-env",
        "WEAVENN_VALUES__SETTINGS__VAULT_ID": "env",
    }

    assert load_values("prod", [first]).image.tag == "from-first"
    assert load_values("prod", [first, second]).image.tag == "from-second"
    assert load_values("prod", [first, second], environ=environ).image.tag == "from-env"
    values = load_values("prod", [first, second], ["image.tag=from-set"], environ=environ)
    assert values.image.tag == "from-set"
    # Keys a layer does not mention come from the layers below.
    assert values.ingress.host == "first.example"
    assert values.settings.vault_id == "env"
    assert values.services.monolith.replicas == 3  # the prod file


def test_set_converts_to_the_field_type_and_keeps_strings_as_written() -> None:
    values = load_values(
        sets=[
            "services.monolith.replicas=4",
            "autoscaling.enabled=true",
            "image.tag=1.10",
            "postgres.storage.storage_class=null",
            "settings.extra={RATE_LIMIT_PER_MINUTE: '200'}",
        ]
    )
    assert values.services.monolith.replicas == 4
    assert values.autoscaling.enabled is True
    assert values.image.tag == "1.10"  # not the float 1.1
    assert values.postgres.storage.storage_class is None
    assert values.settings.extra == {"RATE_LIMIT_PER_MINUTE": "200"}


def test_unknown_key_names_the_key_its_source_and_the_known_ones() -> None:
    with pytest.raises(UsageError) as caught:
        load_values("prod", sets=["services.taskservice.replicas=3"])
    assert caught.value.message == (
        "unknown value services.taskservice (from --set services.taskservice.replicas=3): known "
        "keys here are monolith, gateway, task_service, file_service, git_service"
    )
    assert caught.value.exit_code == 2


def test_ill_typed_value_names_the_key_and_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  gateway:\n    replicas: many\n")
    with pytest.raises(
        UsageError,
        match=r"invalid value services\.gateway\.replicas \(from --values .*bad\.yaml\): .*integer",
    ):
        load_values("dev", [bad])


def test_environment_variable_typo_is_named() -> None:
    with pytest.raises(
        UsageError, match=r"unknown value imag \(from environment WEAVENN_VALUES__IMAG__TAG\)"
    ):
        load_values(environ={"WEAVENN_VALUES__IMAG__TAG": "1"})


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("workers.relay.replicas=2", "workers.relay.replicas .*less than or equal to 1"),
        ("resources.limits.cpu=lots", "resources.limits.cpu .*not a Kubernetes quantity"),
        ("settings.extra={lower: x}", "settings.extra .*not an environment variable name"),
        ("image", "--set expects path=value"),
        ("image..tag=1", "--set expects path=value"),
    ],
)
def test_bad_set_is_a_usage_error(assignment: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_values(sets=[assignment])


def test_missing_or_malformed_values_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"values file .*nope\.yaml not found"):
        load_values(files=[tmp_path / "nope.yaml"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("image: [unclosed\n")
    with pytest.raises(UsageError, match=r"broken\.yaml line \d+ is not valid YAML"):
        load_values(files=[broken])
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(UsageError, match="must be a mapping"):
        load_values(files=[listing])


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(UsageError, match="unknown environment 'qa': use one of dev, staging, prod"):
        load_values("qa")
