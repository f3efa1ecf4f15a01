"""Fixtures that give tests real services: PostgreSQL databases, SQLite files, RabbitMQ vhosts,
the installed `weavenn` command, and a clean environment.

A service that does not answer fails the test (it never skips): `.ci/run` starts them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import (
    RABBITMQ_HOST,
    RABBITMQ_PORT,
    WEAVENN_ENV_VARS,
    create_pg_database,
    drop_pg_database,
    pg_url_for,
)

# Real `weavenn serve` processes and module-wide databases, for every area's tests.
pytest_plugins = ["tests.servers"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite golden files with the current output (review the diff).",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in its own folder, without the developer's weavenn settings."""
    for name in WEAVENN_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_available() -> None:
    if not _port_open("127.0.0.1", 5432):
        pytest.fail("PostgreSQL is not answering on 127.0.0.1:5432: start it (see .ci/run)")


@pytest.fixture(scope="session")
def pg_template(postgres_available: None) -> Iterator[str]:
    """A database migrated to head once per session; tests get fast copies of it."""
    from weavenn_cli.runtime import schema

    name = create_pg_database(prefix="weavenn_tpl")
    schema.upgrade(pg_url_for(name))
    yield name
    drop_pg_database(name)


@pytest.fixture
def pg_url(postgres_available: None) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    name = create_pg_database()
    yield pg_url_for(name)
    drop_pg_database(name)


@pytest.fixture
def migrated_pg_url(pg_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database at head (copied from the session template)."""
    name = create_pg_database(template=pg_template)
    yield pg_url_for(name)
    drop_pg_database(name)


# -- SQLite -------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'weave-nn.db'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from weavenn_cli.runtime import schema

    path = tmp_path_factory.mktemp("sqlite-template") / "weave-nn.db"
    schema.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def migrated_sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    target = tmp_path / "db" / "weave-nn.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_migrated_url(request: pytest.FixtureRequest) -> str:
    """The same test on both databases, each at head."""
    name = "migrated_sqlite_url" if request.param == "sqlite" else "migrated_pg_url"
    return str(request.getfixturevalue(name))


# -- RabbitMQ -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rabbitmq_available() -> None:
    if not _port_open(RABBITMQ_HOST, RABBITMQ_PORT):
        pytest.fail(
            f"RabbitMQ is not answering on {RABBITMQ_HOST}:{RABBITMQ_PORT}: start it (see .ci/run)"
        )


@pytest.fixture
def rabbitmq_url(rabbitmq_available: None) -> Iterator[str]:
    """A RabbitMQ URL on a vhost of its own, deleted after the test."""
    vhost = f"weavenn-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{vhost}"
    _rabbitmqctl("delete_vhost", vhost)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


# -- the installed command ----------------------------------------------------------------


@pytest.fixture(scope="session")
def weavenn_bin() -> Path:
    """The `weavenn` console script of the environment running the tests."""
    path = Path(sys.executable).parent / "weavenn"
    if not path.exists():
        pytest.fail(f"{path} not found: install the project (pip install '.[test]')")
    return path


@pytest.fixture
def run_weavenn(weavenn_bin: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed command as a subprocess, in the test's folder and environment."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 120, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [str(weavenn_bin), *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    return run
