"""Fixtures for the consumers of issue 4: a bus per transport, and vault repositories."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bus.harness import Bus, make_bus

TRANSPORTS = ["rabbitmq-postgresql", "embedded-sqlite"]


@pytest.fixture(params=TRANSPORTS)
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    """RabbitMQ on PostgreSQL, then the embedded transport on SQLite."""
    harness = make_bus(request, request.param)
    yield harness
    harness.close()


@pytest.fixture
def embedded_bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    harness = make_bus(request, "embedded-sqlite")
    yield harness
    harness.close()


@pytest.fixture
def rabbitmq_bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    harness = make_bus(request, "rabbitmq-postgresql")
    yield harness
    harness.close()
