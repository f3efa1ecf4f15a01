"""`weavenn doctor` against real databases, a real broker and real folders."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from weavenn_cli.runtime import schema


def _checks(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    return {c["check"]: c for c in json.loads(result.stdout)}


def _vault(tmp_path: Path, git: bool = True) -> Path:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "note.md").write_text("# A note\n")
    if git:
        subprocess.run(["git", "init", "-q", str(vault)], check=True)
    return vault


def test_healthy_install_passes(
    run_weavenn, migrated_pg_url: str, rabbitmq_url: str, tmp_path: Path
) -> None:
    _vault(tmp_path)
    result = run_weavenn(
        "doctor", "--json", env={"DATABASE_URL": migrated_pg_url, "RABBITMQ_URL": rabbitmq_url}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    checks = _checks(result)
    assert [
        checks[n]["status"] for n in ("settings", "database", "rabbitmq", "vault", "vault git")
    ] == [
        "ok",
        "ok",
        "ok",
        "ok",
        "ok",
    ]
    assert checks["vault"]["detail"] == "vault (1 notes)"
    assert checks["kubeconfig"]["status"] == "info"


def test_database_behind_head_fails(run_weavenn, sqlite_url: str, tmp_path: Path) -> None:
    _vault(tmp_path)
    schema.upgrade(sqlite_url, "001")
    result = run_weavenn("doctor", "--json", env={"DATABASE_URL": sqlite_url})
    assert result.returncode == 1
    assert "run `weavenn migrate db`" in _checks(result)["database"]["detail"]


def test_unreachable_broker_and_missing_vault_fail(run_weavenn, migrated_sqlite_url: str) -> None:
    result = run_weavenn(
        "doctor",
        "--json",
        env={
            "DATABASE_URL": migrated_sqlite_url,
            "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/",
        },
    )
    assert result.returncode == 1
    checks = _checks(result)
    assert checks["rabbitmq"]["status"] == "fail"
    assert "refused" in checks["rabbitmq"]["detail"].lower()
    assert checks["vault"]["status"] == "fail"


def test_vault_without_git_is_a_warning_not_a_failure(
    run_weavenn, migrated_sqlite_url: str, tmp_path: Path
) -> None:
    _vault(tmp_path, git=False)
    result = run_weavenn("doctor", "--json", env={"DATABASE_URL": migrated_sqlite_url})
    assert result.returncode == 0
    assert _checks(result)["vault git"]["status"] == "warn"


def test_bad_settings_fail_the_first_check(run_weavenn) -> None:
    result = run_weavenn("doctor", "--json", env={"LOG_LEVEL": "LOUD"})
    assert result.returncode == 1
    checks = _checks(result)
    assert checks["settings"]["status"] == "fail"
    assert "LOG_LEVEL" in checks["settings"]["detail"]


def test_table_output(run_weavenn, migrated_sqlite_url: str, tmp_path: Path) -> None:
    _vault(tmp_path)
    result = run_weavenn("doctor", env={"DATABASE_URL": migrated_sqlite_url})
    assert result.returncode == 0
    for name in ("settings", "database", "rabbitmq", "vault", "kubeconfig"):
        assert name in result.stdout
