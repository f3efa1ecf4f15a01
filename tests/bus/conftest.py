"""Bus fixtures: the same test on RabbitMQ and on the embedded transport (both databases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bus.consumers import create_effects_table
from tests.bus.harness import Bus

TRANSPORTS = ["rabbitmq-postgresql", "embedded-sqlite", "embedded-postgresql"]


@pytest.fixture(params=TRANSPORTS)
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    """A bus with its topology declared and an effects table for the test consumers."""
    kind, database = request.param.split("-")
    database_url = str(
        request.getfixturevalue(
            "migrated_pg_url" if database == "postgresql" else "migrated_sqlite_url"
        )
    )
    rabbitmq_url = str(request.getfixturevalue("rabbitmq_url")) if kind == "rabbitmq" else None
    create_effects_table(database_url)
    harness = Bus(kind, database_url, rabbitmq_url)
    yield harness
    harness.close()
