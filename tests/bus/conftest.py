"""Bus fixtures: the same test on RabbitMQ and on the embedded transport (both databases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bus.harness import Bus, make_bus
from tests.bus.private_rabbitmq import PrivateRabbitMQ

TRANSPORTS = ["rabbitmq-postgresql", "embedded-sqlite", "embedded-postgresql"]


@pytest.fixture(params=TRANSPORTS)
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    """A bus with its topology declared and an effects table for the test consumers."""
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


@pytest.fixture(scope="module")
def private_rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitMQ]:
    """A RabbitMQ node (with the management plugin) this module's tests may stop and start."""
    node = PrivateRabbitMQ(tmp_path_factory.mktemp("rabbitmq"), management=True).start()
    yield node
    node.close()
