"""Issue 3 end to end, in real processes on RabbitMQ and PostgreSQL: a consumer killed with
-9 in the middle of a burst of 1,000 changes, restarted, leaves the cache exactly right."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.bus.harness import wait_until
from tests.bus.pipeline import note_count, reference, snapshot, weavenn_process, write_notes

pytestmark = pytest.mark.xdist_group("pipeline")

NOTES = 1000


def test_kill_9_of_mcp_sync_in_a_burst_of_1000_changes_then_restart_leaves_the_cache_exact(
    tmp_path: Path, rabbitmq_url: str, migrated_pg_url: str, migrated_sqlite_url: str
) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    env = {
        "DATABASE_URL": migrated_pg_url,
        "RABBITMQ_URL": rabbitmq_url,
        "VAULT_PATH": str(vault),
        "DEBOUNCE_SECONDS": "0.1",
    }
    with weavenn_process("watch", env=env):
        with weavenn_process("consume", "mcp-sync", env=env) as consumer:
            write_notes(vault, range(NOTES), NOTES)  # the burst
            wait_until(
                lambda: note_count(migrated_pg_url) >= 150, what="the burst under way", timeout=120
            )
            consumer.send_signal(signal.SIGKILL)
            consumer.wait(10)
        assert note_count(migrated_pg_url) < NOTES, "the consumer finished before it was killed"
        write_notes(vault, range(0, NOTES, 10), NOTES, version=1)  # more changes meanwhile
        with weavenn_process("consume", "mcp-sync", env=env):
            expected = reference(vault, migrated_sqlite_url)
            wait_until(lambda: note_count(migrated_pg_url) == NOTES, what="every note", timeout=240)
            wait_until(
                lambda: snapshot(migrated_pg_url) == expected, what="the exact cache", timeout=240
            )
    assert len(expected["notes"]) == NOTES  # type: ignore[arg-type]
