"""Fixtures for the consumers of issue 4: a bus per transport, and vault repositories."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bus.consumers import create_effects_table
from tests.bus.harness import Bus

TRANSPORTS = ["rabbitmq-postgresql", "embedded-sqlite"]


def _make_bus(request: pytest.FixtureRequest, variant: str) -> Bus:
    kind, database = variant.split("-")
    fixture = "migrated_pg_url" if database == "postgresql" else "migrated_sqlite_url"
    database_url = str(request.getfixturevalue(fixture))
    rabbitmq_url = str(request.getfixturevalue("rabbitmq_url")) if kind == "rabbitmq" else None
    create_effects_table(database_url)
    return Bus(kind, database_url, rabbitmq_url)


@pytest.fixture(params=TRANSPORTS)
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    """RabbitMQ on PostgreSQL, then the embedded transport on SQLite."""
    harness = _make_bus(request, request.param)
    yield harness
    harness.close()


@pytest.fixture
def embedded_bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    harness = _make_bus(request, "embedded-sqlite")
    yield harness
    harness.close()


@pytest.fixture
def rabbitmq_bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    harness = _make_bus(request, "rabbitmq-postgresql")
    yield harness
    harness.close()
