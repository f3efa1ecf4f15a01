"""`weavenn consume n8n-workflows` against a local HTTP server that answers like n8n's webhooks.

n8n cannot run here: `N8nWebhookServer` (tests/consumers/n8n_webhook.py) answers as n8n's
Webhook node does. The bus is real: RabbitMQ, and the embedded transport on SQLite.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from tests.bus import harness
from tests.bus.consumers import create_effects_table
from tests.bus.harness import Bus, subprocess_env, vault_event, wait_until
from tests.consumers.n8n_webhook import Answer, N8nWebhookServer
from weavenn_cli.runtime.bus.deadletters import DeadLetters
from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.consumers.n8n_workflows import N8nWorkflowsConsumer, retry_after_seconds
from weavenn_cli.runtime.events import TaskEvent, derive_message_id

BIN = Path(sys.executable).parent / "weavenn"
# Second delay long enough to honour a Retry-After of 1 s; first one short for quick retries.
RETRY_DELAYS = "0.3,1.2"
SECRET = "n8n-shared-secret"


def _bus(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, kind: str) -> Bus:
    monkeypatch.setattr(harness, "RETRY_DELAYS", RETRY_DELAYS)
    if kind == "rabbitmq":
        database_url = str(request.getfixturevalue("migrated_pg_url"))
        rabbitmq_url: str | None = str(request.getfixturevalue("rabbitmq_url"))
    else:
        database_url = str(request.getfixturevalue("migrated_sqlite_url"))
        rabbitmq_url = None
    create_effects_table(database_url)
    return Bus(kind, database_url, rabbitmq_url)


@pytest.fixture(params=["rabbitmq", "embedded"])
def bus(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bus]:
    """RabbitMQ with PostgreSQL, and the embedded transport on SQLite (no RABBITMQ_URL)."""
    harness_bus = _bus(request, monkeypatch, request.param)
    yield harness_bus
    harness_bus.close()


@pytest.fixture
def rabbitmq_bus(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bus]:
    harness_bus = _bus(request, monkeypatch, "rabbitmq")
    yield harness_bus
    harness_bus.close()


@pytest.fixture
def n8n() -> Iterator[N8nWebhookServer]:
    with N8nWebhookServer("/webhook/weave-nn", "/webhook/created", "/webhook/vault") as server:
        yield server


@contextmanager
def forwarding(bus: Bus, **settings: Any) -> Iterator[N8nWorkflowsConsumer]:
    """The n8n-workflows consumer, built from these settings, running on `bus`."""
    consumer = N8nWorkflowsConsumer.from_settings(load_settings(None, **settings))
    try:
        with bus.running(consumer):
            yield consumer
    finally:
        consumer.close()


def task_event(task_id: str = "t-1") -> TaskEvent:
    return TaskEvent(
        message_id=derive_message_id("test", "task.completed", task_id),
        event_type="task.completed",
        task_id=task_id,
        project_id="p-1",
        task={"id": task_id, "title": "Ship it", "status": "done"},
    )


def assert_queue_settled(bus: Bus) -> None:
    """After the runner stopped: nothing came back to the queue or waits for a retry."""
    queue = bus.queue("n8n_workflows")
    assert (queue.ready, queue.retrying or 0) == (0, 0)


def dead_letters(bus: Bus) -> list[Any]:
    bus.transport.collect_dead_letters()
    return DeadLetters(bus.engine).list("n8n_workflows")


def test_events_reach_the_webhook_signed_over_the_exact_body_bytes(
    bus: Bus, n8n: N8nWebhookServer
) -> None:
    created, completed = vault_event("ideas/graph.md"), task_event()
    bus.publish([created, completed])  # type: ignore[list-item]
    with forwarding(
        bus, n8n_webhook_url=n8n.url("/webhook/weave-nn"), n8n_webhook_secret=SECRET
    ) as consumer:
        wait_until(lambda: consumer.forwarded == 2, what="two events forwarded")
    assert_queue_settled(bus)
    by_event = {r.headers["X-Weavenn-Event"]: r for r in n8n.received()}
    assert len(by_event) == len(n8n.received())
    assert set(by_event) == {"vault.file.created", "task.completed"}
    for event in (created, completed):
        request = by_event[event.routing_key]
        expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-Weavenn-Signature"] == f"sha256={expected}"
        assert request.headers["X-Weavenn-Message-Id"] == event.message_id
        assert request.headers["Content-Type"] == "application/json"
        assert request.json() == json.loads(event.model_dump_json())
    assert dead_letters(bus) == []


def test_routes_send_each_event_to_its_first_matching_pattern_and_skip_the_unrouted(
    rabbitmq_bus: Bus, n8n: N8nWebhookServer
) -> None:
    created, updated = vault_event("a.md"), vault_event("a.md", "vault.file.updated", 1)
    routes = {
        "vault.file.created": n8n.url("/webhook/created"),
        "vault.#": n8n.url("/webhook/vault"),
    }
    rabbitmq_bus.publish([created, updated, task_event()])  # type: ignore[list-item]
    with forwarding(rabbitmq_bus, n8n_routes=routes) as consumer:
        wait_until(lambda: consumer.forwarded + consumer.skipped == 3, what="three events")
    assert_queue_settled(rabbitmq_bus)
    assert [r.headers["X-Weavenn-Message-Id"] for r in n8n.received("/webhook/created")] == [
        created.message_id
    ]
    assert [r.headers["X-Weavenn-Message-Id"] for r in n8n.received("/webhook/vault")] == [
        updated.message_id
    ]
    assert len(n8n.received()) == 2  # the task event matched no route and no fallback is set
    assert consumer.skipped == 1
    assert "X-Weavenn-Signature" not in n8n.received()[0].headers  # no secret, no signature


def test_routes_fall_back_to_the_webhook_url() -> None:
    consumer = N8nWorkflowsConsumer(
        routes=[("vault.file.*", "http://127.0.0.1:1/files"), ("#", "http://127.0.0.1:1/all")],
        fallback_url="http://127.0.0.1:1/fallback",
    )
    try:
        assert consumer.url_for("vault.file.moved") == "http://127.0.0.1:1/files"
        assert consumer.url_for("task.created") == "http://127.0.0.1:1/all"
    finally:
        consumer.close()
    only_files = N8nWorkflowsConsumer(
        routes=[("vault.file.*", "http://127.0.0.1:1/files")],
        fallback_url="http://127.0.0.1:1/fallback",
    )
    try:
        assert only_files.url_for("vault.metadata.tags_updated") == "http://127.0.0.1:1/fallback"
    finally:
        only_files.close()


def test_a_500_is_retried_and_the_event_delivered_once(bus: Bus, n8n: N8nWebhookServer) -> None:
    n8n.answer_next("/webhook/weave-nn", Answer(500, {"message": "Error in workflow"}))
    event = vault_event("retry.md")
    bus.publish([event])
    with forwarding(bus, n8n_webhook_url=n8n.url("/webhook/weave-nn")) as consumer:
        wait_until(lambda: consumer.forwarded == 1, what="the event forwarded")
    assert_queue_settled(bus)
    requests = n8n.received()
    assert [r.headers["X-Weavenn-Attempt"] for r in requests] == ["1", "2"]
    assert {r.headers["X-Weavenn-Message-Id"] for r in requests} == {event.message_id}
    assert dead_letters(bus) == []


def test_a_timeout_is_retried(rabbitmq_bus: Bus, n8n: N8nWebhookServer) -> None:
    n8n.answer_next("/webhook/weave-nn", Answer(delay=3.0))
    rabbitmq_bus.publish([vault_event("slow.md")])
    with forwarding(
        rabbitmq_bus, n8n_webhook_url=n8n.url("/webhook/weave-nn"), n8n_timeout_seconds=0.5
    ) as consumer:
        wait_until(lambda: consumer.forwarded == 1, what="the event forwarded on retry")
    assert_queue_settled(rabbitmq_bus)
    assert [r.headers["X-Weavenn-Attempt"] for r in n8n.received()] == ["1", "2"]
    assert dead_letters(rabbitmq_bus) == []


def test_a_429_waits_at_least_its_retry_after(rabbitmq_bus: Bus, n8n: N8nWebhookServer) -> None:
    n8n.answer_next(
        "/webhook/weave-nn",
        Answer(429, {"message": "Too many requests"}, headers={"Retry-After": "1"}),
    )
    rabbitmq_bus.publish([vault_event("busy.md")])
    with forwarding(rabbitmq_bus, n8n_webhook_url=n8n.url("/webhook/weave-nn")) as consumer:
        wait_until(lambda: consumer.forwarded == 1, what="the event forwarded after the 429")
    assert_queue_settled(rabbitmq_bus)
    first, second = n8n.received()
    # The schedule's first delay is 0.3 s: only Retry-After explains a gap of a second or more.
    assert second.at - first.at >= 1.0
    assert second.headers["X-Weavenn-Attempt"] == "2"


def test_retry_after_is_seconds_or_an_http_date() -> None:
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0
    assert retry_after_seconds("soon", now) == 0.0
    assert retry_after_seconds(None, now) == 0.0


@pytest.mark.xdist_group("consume-process")
def test_weavenn_consume_n8n_workflows_dead_letters_a_404_with_status_and_excerpt(
    bus: Bus, n8n: N8nWebhookServer, run_weavenn: Any
) -> None:
    gone = vault_event("gone.md")
    routes = {"vault.file.created": n8n.url("/webhook/unregistered")}
    env = subprocess_env(
        bus, N8N_ROUTES=json.dumps(routes), N8N_WEBHOOK_URL=n8n.url("/webhook/weave-nn")
    )
    bus.publish([gone, task_event()])  # type: ignore[list-item]
    process = subprocess.Popen(
        [str(BIN), "consume", "n8n-workflows"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: len(n8n.received()) >= 2, what="two posts")
        wait_until(lambda: dead_letters(bus), what="a dead letter")
        listed = run_weavenn("dlq", "list", "--json", env=bus.env)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert listed.returncode == 0, listed.stderr
    (dead,) = json.loads(listed.stdout)
    assert dead["message_id"] == gone.message_id
    assert dead["attempts"] == 1  # straight to the dead letters, no retry
    assert "PermanentError" in dead["error"]
    assert "404" in dead["error"]
    assert "is not registered" in dead["error"]  # the excerpt of n8n's answer
    assert len(n8n.received("/webhook/unregistered")) == 1
    assert [r.headers["X-Weavenn-Event"] for r in n8n.received("/webhook/weave-nn")] == [
        "task.completed"  # by the fallback URL
    ]
    assert "n8n-workflows stopped" in stderr


def test_without_a_url_or_routes_it_refuses_to_start_in_one_line(run_weavenn: Any) -> None:
    result = run_weavenn("consume", "n8n-workflows")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "N8N_WEBHOOK_URL" in lines[0] and "N8N_ROUTES" in lines[0]


def test_n8n_routes_that_are_not_json_are_a_config_error_in_one_line(run_weavenn: Any) -> None:
    result = run_weavenn("consume", "n8n-workflows", env={"N8N_ROUTES": "{vault.#: http://x}"})
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "N8N_ROUTES" in lines[0] and "not JSON" in lines[0]


def test_consume_list_shows_every_registered_consumer_with_its_queue_and_bindings(
    run_weavenn: Any,
) -> None:
    from weavenn_cli.runtime.bus.topology import Topology
    from weavenn_cli.runtime.consumers.registry import REGISTERED, describe_all

    result = run_weavenn("consume", "--list")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if "│" in line}
    assert set(rows) == set(REGISTERED)
    for info in describe_all(Topology()):
        assert f" {info.queue} " in rows[info.name]
        assert " ".join(info.bindings) in rows[info.name]
    assert "n8n_workflows" in rows["n8n-workflows"] and "vault.# task.#" in rows["n8n-workflows"]


def test_config_show_prints_the_routes_as_json_with_passwords_masked(run_weavenn: Any) -> None:
    routes = {"task.#": "http://hooks:s3cret@127.0.0.1:5678/webhook/tasks"}
    result = run_weavenn("config", "show", "--json", env={"N8N_ROUTES": json.dumps(routes)})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)["N8N_ROUTES"]["value"]
    assert json.loads(shown) == {"task.#": "http://hooks:********@127.0.0.1:5678/webhook/tasks"}
    assert "s3cret" not in result.stdout
