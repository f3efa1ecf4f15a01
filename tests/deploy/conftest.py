"""Fixtures of the deploy tests: the Kubernetes API stand-in and a kubeconfig pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
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
