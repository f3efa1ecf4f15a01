"""Every setting of the model reaches the containers of both deployments, secrets as secrets."""

from __future__ import annotations

import pytest
import yaml
from pydantic import SecretStr

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.deploy import compose, k8s
from weavenn_cli.runtime.deploy.secrets import APP_SECRET_KEYS
from weavenn_cli.runtime.deploy.values import Values, load_values
from weavenn_cli.runtime.errors import UsageError

# Settings neither deployment carries, on purpose. Keep each one explained.
LOCAL_ONLY = {
    # Written by the artefacts themselves, per container: the service's own name.
    "SERVICE_NAME",
}
# Settings that may carry a credential (a URL with a token or password) without being typed as
# a secret: they must never appear in a ConfigMap or with an example value.
CREDENTIAL_URLS = {"GIT_REMOTE", "SECONDARY_DATABASE_URL", "RABBITMQ_MANAGEMENT_URL"}
MODEL = {name.upper() for name in Settings.model_fields}
SECRET_SETTINGS = {
    name.upper()
    for name, field in Settings.model_fields.items()
    if SecretStr in (getattr(field.annotation, "__args__", None) or (field.annotation,))
} | CREDENTIAL_URLS


def _compose_names() -> set[str]:
    """What the .env example lists plus what docker-compose.yml sets in the containers."""
    for postgres in (False, True):
        values = Values.model_validate(
            {"compose": {"postgres": postgres, "extracted_services": True}}
        )
        rendered = compose.render(values)
        names = {variable.name for variable in compose.variables(values)}
        for service in yaml.safe_load(rendered.compose)["services"].values():
            environment = service.get("environment") or {}
            names |= set(environment if isinstance(environment, dict) else [])
    return names


def _kubernetes_names() -> tuple[set[str], set[str]]:
    config = set(k8s.app_config(Values())) | set(k8s.CONFIG_DEFAULTS)
    return config, {key.app_env for key in APP_SECRET_KEYS if key.app_env}


def test_every_setting_is_in_the_compose_env_or_the_kubernetes_config() -> None:
    config, secrets = _kubernetes_names()
    missing = sorted(MODEL - LOCAL_ONLY - _compose_names() - config - secrets)
    assert not missing, (
        f"settings in neither the compose env nor the ConfigMap/Secret: {missing}; add them to "
        "runtime/deploy/compose.py (_PASS_THROUGH) and runtime/deploy/k8s.py (CONFIG_DEFAULTS) "
        "or runtime/deploy/secrets.py, or to LOCAL_ONLY here with the reason"
    )


def test_the_allow_list_names_real_settings() -> None:
    assert LOCAL_ONLY <= MODEL and CREDENTIAL_URLS <= MODEL


def test_secrets_are_in_the_secret_never_in_the_config_map() -> None:
    config, secrets = _kubernetes_names()
    assert SECRET_SETTINGS & {"N8N_WEBHOOK_SECRET", "CLAUDE_API_KEY", "GIT_REMOTE"}
    assert not SECRET_SETTINGS & config
    assert SECRET_SETTINGS - {"DATABASE_URL", "RABBITMQ_URL"} <= secrets


def test_secrets_get_no_example_value_in_the_compose_env() -> None:
    variables = {variable.name: variable for variable in compose.variables(Values())}
    for name in SECRET_SETTINGS & set(variables):
        assert variables[name].secret and not variables[name].example, name


@pytest.mark.parametrize("name", ["N8N_WEBHOOK_SECRET", "GIT_REMOTE"])
def test_a_values_file_cannot_put_a_secret_in_the_config_map(name: str) -> None:
    with pytest.raises(UsageError, match="is a secret"):
        load_values(
            sets=[f"settings.extra.{name}=https://user:token@example.com/x.git"], environ={}
        )
