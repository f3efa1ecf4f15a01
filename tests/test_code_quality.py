"""Lint and type checks run with the tests, so main stays clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.xdist_group("quality")
def test_ruff_finds_nothing() -> None:
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.xdist_group("quality")
def test_runtime_is_mypy_clean() -> None:
    result = subprocess.run(
        [str(BIN / "mypy"), "--no-incremental", "weavenn_cli/runtime"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_never_imports_the_cli_libraries() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "weavenn_cli" / "runtime").rglob("*.py")
        for line in path.read_text().splitlines()
        if line.strip().startswith(("import typer", "from typer", "import rich", "from rich"))
    ]
    assert offenders == []
