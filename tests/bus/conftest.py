"""Bus fixtures: the same test on RabbitMQ and on the embedded transport (both databases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bus.harness import bus_fixture, embedded_bus, rabbitmq_bus
from tests.bus.private_rabbitmq import PrivateRabbitMQ

TRANSPORTS = ["rabbitmq-postgresql", "embedded-sqlite", "embedded-postgresql"]
# Imported for the tests of this folder.
__all__ = ["bus", "embedded_bus", "rabbitmq_bus"]


bus = bus_fixture(TRANSPORTS)


@pytest.fixture(scope="module")
def private_rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitMQ]:
    """A RabbitMQ node (with the management plugin) this module's tests may stop and start."""
    node = PrivateRabbitMQ(tmp_path_factory.mktemp("rabbitmq"), management=True).start()
    yield node
    node.close()
