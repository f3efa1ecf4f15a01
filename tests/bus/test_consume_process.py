"""`weavenn consume` as a real process: kill -9 mid-burst, SIGTERM drain, metrics, usage."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from collections import Counter
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path

import pytest

from tests.bus.harness import Bus, consume_process, vault_event, wait_until
from weavenn_cli.runtime.bus.deadletters import DeadLetters

RECORDER = "tests.bus.consumers:RecordingConsumer"


def consumer_process(bus: Bus, *args: str, **env: str) -> ContextManager[subprocess.Popen[str]]:
    return consume_process(bus, RECORDER, *args, **env)


@pytest.mark.xdist_group("consume-process")
def test_kill_9_in_the_middle_of_a_burst_then_restart_gives_every_effect_exactly_once(
    bus: Bus,
) -> None:
    events = [vault_event(f"burst/{i}.md") for i in range(300)]
    bus.publish(events)
    with consumer_process(bus, "--prefetch", "20", TEST_HANDLER_SLEEP="0.005") as first:
        wait_until(lambda: bus.effect_count() >= 60, what="the burst under way")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    interrupted_at = bus.effect_count()
    assert interrupted_at < 300, "the consumer finished before it was killed"
    with consumer_process(bus, "--prefetch", "20"):
        wait_until(lambda: bus.effect_count() >= 300, what="every effect", timeout=90)
        wait_until(lambda: bus.queue("mcp_sync").ready == 0, what="an empty queue")
    counts = Counter(m for m, _, _ in bus.effects())
    assert set(counts) == {e.message_id for e in events}
    assert max(counts.values()) == 1


@pytest.mark.xdist_group("consume-process")
def test_sigterm_finishes_the_work_in_hand_returns_the_rest_and_exits_0(
    bus: Bus, tmp_path: Path
) -> None:
    started = tmp_path / "started.log"
    events = [vault_event(f"slow/{i}.md") for i in range(20)]
    bus.publish(events)
    with consumer_process(
        bus, "--prefetch", "4", TEST_HANDLER_SLEEP="0.2", TEST_STARTED_FILE=str(started)
    ) as process:
        wait_until(
            lambda: started.exists() and len(started.read_text().splitlines()) >= 2,
            what="handlers running",
        )
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "recorder stopped" in stderr
    applied = {m for m, _, _ in bus.effects()}
    begun = {line.split()[0] for line in started.read_text().splitlines()}
    assert begun <= applied  # every handler that started was allowed to finish
    assert len(applied) < 20
    assert bus.queue("mcp_sync").ready == 20 - len(applied)  # the rest is back in the queue


def test_metrics_port_serves_the_runner_counters(embedded_bus: Bus) -> None:
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    embedded_bus.publish(
        [vault_event(f"m/{i}.md") for i in range(3)] + [vault_event("permanent.md")]
    )
    with consumer_process(embedded_bus, "--metrics-port", str(port)):
        wait_until(lambda: embedded_bus.effect_count() == 3, what="three effects")

        def scrape() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                return ""
            return text if 'dead_lettered_total{consumer="recorder"} 1.0' in text else ""

        text = wait_until(scrape, what="metrics")
    assert 'weavenn_consumer_processed_total{consumer="recorder"} 3.0' in text
    assert "weavenn_consumer_handler_seconds_bucket" in text


def test_consume_list_shows_registered_consumers_or_says_there_are_none(run_weavenn) -> None:
    result = run_weavenn("consume", "--list")
    assert result.returncode == 0, result.stderr
    assert "consumer" in result.stdout and "queue" in result.stdout


def test_an_unknown_consumer_is_bad_usage_in_one_line(run_weavenn) -> None:
    result = run_weavenn("consume", "no-such-consumer")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "unknown consumer 'no-such-consumer'" in lines[0]


def test_an_import_path_that_is_not_a_consumer_is_refused(run_weavenn) -> None:
    result = run_weavenn("consume", "os.path:join", env={"PYTHONPATH": os.getcwd()})
    assert result.returncode == 2
    assert "is not a consumer" in result.stderr


@pytest.mark.xdist_group("consume-process")
def test_a_message_that_kills_the_consumer_each_time_is_dead_lettered_after_the_budget(
    bus: Bus,
) -> None:
    """The broker redelivers it after every death; the count kept in the database does not
    start over, so past the retry budget (3 here) it goes to the dead letters, and the
    messages that arrived with it take effect once each."""
    events = [vault_event(f"before/{i}.md") for i in range(5)]
    events += [vault_event("kill-process.md")]
    events += [vault_event(f"after/{i}.md") for i in range(5)]
    bus.publish(events)
    deaths = 0
    for _ in range(8):  # bounded: the budget allows 1 + 3 deliveries that kill, then refuses
        with consumer_process(bus, TEST_KILL_PROCESS="1") as process:
            wait_until(
                lambda p=process: p.poll() is not None or bus.effect_count() == 10,
                what="a death or every good effect",
                timeout=60,
            )
            if process.poll() is None:
                wait_until(lambda: _dead_letters(bus), what="the killer dead-lettered")
                break
            deaths += 1
    else:
        pytest.fail("the killer message was never dead-lettered")
    assert 2 <= deaths <= 4
    dead = _dead_letters(bus)
    assert [row.message_id for row in dead] == [events[5].message_id]
    assert "without being settled" in dead[0].error
    counts = Counter(m for m, _, _ in bus.effects())
    assert set(counts) == {e.message_id for e in events if e is not events[5]}
    assert max(counts.values()) == 1


def _dead_letters(bus: Bus) -> list:
    bus.transport.collect_dead_letters()
    return DeadLetters(bus.engine).list()
