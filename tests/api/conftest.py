"""Fixtures of the API tests; the servers themselves come from tests/servers.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.servers import Server, StartServer, free_port

__all__ = ["Server", "StartServer", "free_port", "git"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(request: pytest.FixtureRequest) -> str:
    """The same module on both databases."""
    name = "module_sqlite_url" if request.param == "sqlite" else "module_pg_url"
    return str(request.getfixturevalue(name))


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@pytest.fixture(scope="module")
def module_vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vault folder that is a git repository, shared by one module."""
    vault = tmp_path_factory.mktemp("vault")
    git(vault, "init", "-q", "-b", "main")
    return vault
