"""Fixtures for the consumers' tests: a bus per transport (the harness of tests/bus)."""

from __future__ import annotations

from tests.bus.harness import bus_fixture, embedded_bus, rabbitmq_bus

TRANSPORTS = ["rabbitmq-postgresql", "embedded-sqlite"]
# Imported for the tests of this folder.
__all__ = ["bus", "embedded_bus", "rabbitmq_bus"]


bus = bus_fixture(TRANSPORTS)
