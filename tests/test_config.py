"""Settings: environment, .env files, --env-file, masking of secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from weavenn_cli.app import app
from weavenn_cli.runtime.config import DEFAULT_DATABASE_URL, load_settings, mask_url
from weavenn_cli.runtime.errors import ConfigError

runner = CliRunner()


def test_defaults_follow_the_original_design() -> None:
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///./data/weave-nn.db"
    assert settings.vault_path == Path("./vault")
    assert settings.rabbitmq_url is None
    assert settings.rabbitmq_exchange == "weave-nn.events"
    assert settings.deployment_mode == "local"


def test_environment_overrides_dotenv_which_overrides_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("VAULT_ID=from-dotenv\nSERVICE_NAME=from-dotenv\n")
    monkeypatch.setenv("SERVICE_NAME", "from-env")
    settings = load_settings()
    assert settings.vault_id == "from-dotenv"
    assert settings.service_name == "from-env"


def test_env_file_option_reads_that_file(tmp_path: Path) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text("VAULT_ID=prod-vault\n")
    result = runner.invoke(app, ["--env-file", str(env_file), "config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["VAULT_ID"] == {"value": "prod-vault", "source": str(env_file)}


def test_missing_env_file_is_a_clear_error(run_weavenn) -> None:
    result = run_weavenn("--env-file", "missing.env", "config", "show")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: env file missing.env not found: pass an existing file to --env-file or drop the "
        "option"
    )


def test_invalid_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYMENT_MODE", "mainframe")
    with pytest.raises(ConfigError, match="DEPLOYMENT_MODE"):
        load_settings()


def test_config_show_masks_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://weave:pg-s3cret@db:5432/weave_nn")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://admin:mq-s3cret@rabbitmq:5672/")
    monkeypatch.setenv("API_KEY", "api-s3cret")
    monkeypatch.setenv("CLAUDE_API_KEY", "sk-ant-s3cret")
    for as_json in (True, False):
        result = runner.invoke(app, ["config", "show", *(["--json"] if as_json else [])])
        assert result.exit_code == 0, result.output
        assert "s3cret" not in result.output
    shown = json.loads(runner.invoke(app, ["config", "show", "--json"]).stdout)
    assert shown["DATABASE_URL"]["value"] == "postgresql://weave:********@db:5432/weave_nn"
    assert shown["RABBITMQ_URL"]["value"] == "amqp://admin:********@rabbitmq:5672/"
    assert shown["API_KEY"] == {"value": "********", "source": "env"}


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql://u:********@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("amqp://:p@h/", "amqp://********@h/"),
        ("sqlite:///./data/weave-nn.db", "sqlite:///./data/weave-nn.db"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_sqlite_folder_is_created_when_needed(tmp_path: Path) -> None:
    from weavenn_cli.runtime.db.engine import check_connection, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'weave-nn.db'}")
    check_connection(engine)
    assert (tmp_path / "a" / "b" / "weave-nn.db").exists()
