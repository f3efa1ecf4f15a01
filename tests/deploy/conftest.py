"""Fixtures of the deploy tests: the Kubernetes API stand-in and a kubeconfig pointing at it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.deploy.kube_api import RunningApi, serve


@pytest.fixture
def kube_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningApi]:
    """The stand-in API server on 127.0.0.1, and KUBECONFIG pointing at it."""
    for running in serve():
        config = running.kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(config))
        yield running


@pytest.fixture(autouse=True)
def no_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's WEAVENN_VALUES__* must not leak into rendered test output."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("WEAVENN_VALUES__"):
            monkeypatch.delenv(name)


def assert_golden(path: Path, text: str, update: bool) -> None:
    """Compare with a reviewed golden file; `pytest --update-golden` rewrites it."""
    import difflib

    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.is_file(), f"{path} missing: run pytest --update-golden and review it"
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"golden/{path.name}",
                tofile="rendered",
                n=2,
            )
        )
        pytest.fail(f"{path.name} differs (review, then pytest --update-golden):\n{diff[:4000]}")


@pytest.fixture
def invoke() -> Callable[..., subprocess.CompletedProcess[str]]:
    """The `weavenn` command run in this process (as `run_weavenn` does in a subprocess):
    the same code path from the root group down, without an interpreter start per call."""
    from typer.testing import CliRunner

    from weavenn_cli.app import app

    def run(
        *args: str, env: dict[str, str] | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        result = CliRunner().invoke(app, list(args), env=env)
        completed = subprocess.CompletedProcess(
            ["weavenn", *args], result.exit_code, result.stdout, result.stderr
        )
        if check and result.exit_code != 0:
            raise AssertionError(
                f"weavenn {' '.join(args)} exited {result.exit_code}: {result.stderr}"
            )
        return completed

    return run
