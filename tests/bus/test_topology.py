"""The topology description: bindings, topic matching, retry schedule, settings."""

from __future__ import annotations

import pytest

from weavenn_cli.runtime.bus.topology import Topology, topic_matches, topology_from_settings
from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.errors import ConfigError


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("vault.file.*", "vault.file.created", True),
        ("vault.file.*", "vault.file", False),
        ("vault.file.*", "vault.file.created.extra", False),
        ("vault.#", "vault", True),
        ("vault.#", "vault.metadata.tags_updated", True),
        ("vault.#", "vaults.file", False),
        ("#", "anything.at.all", True),
        ("task.*", "task.completed", True),
        ("*.completed", "task.completed", True),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
    ],
)
def test_topic_matching_follows_amqp_rules(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


def test_a_created_note_reaches_every_queue_and_a_deleted_one_skips_agent_tasks() -> None:
    topology = Topology()
    everyone = ["mcp_sync", "git_auto_commit", "agent_tasks", "n8n_workflows"]
    assert topology.queues_for("vault.file.created") == everyone
    assert topology.queues_for("vault.file.deleted") == [
        "mcp_sync",
        "git_auto_commit",
        "n8n_workflows",
    ]
    assert topology.queues_for("task.completed") == ["agent_tasks", "n8n_workflows"]
    assert topology.queues_for("vault.metadata.tags_updated") == ["n8n_workflows"]
    assert topology.queues_for("other.thing") == []


def test_retry_schedule_is_bounded_and_grows() -> None:
    topology = Topology(retry_delays=(5, 30, 120))
    assert topology.max_attempts == 4
    assert [topology.retry_delay(attempt) for attempt in (1, 2, 3, 4)] == [5, 30, 120, None]
    assert topology.retry_queue("mcp_sync", 30) == "mcp_sync.retry.30000ms"


def test_retry_after_picks_a_long_enough_delay_of_the_schedule() -> None:
    topology = Topology(retry_delays=(5, 30, 120))
    assert topology.retry_delay(1, at_least=20) == 30
    assert topology.retry_delay(1, at_least=500) == 120  # the longest there is
    assert topology.retry_delay(3, at_least=1) == 120


def test_unknown_queue_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="queue 'nope' is not in the bus topology"):
        Topology().queue("nope")


def test_settings_choose_the_exchange_and_the_retry_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_EXCHANGE", "other.events")
    monkeypatch.setenv("BUS_RETRY_DELAYS", "1, 2.5,10")
    topology = topology_from_settings(load_settings())
    assert topology.exchange == "other.events"
    assert topology.retry_delays == (1.0, 2.5, 10.0)


@pytest.mark.parametrize("value", ["0,5", "soon", "-1"])
def test_bad_retry_delays_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("BUS_RETRY_DELAYS", value)
    with pytest.raises(ConfigError, match="BUS_RETRY_DELAYS"):
        load_settings()
