"""Bucketing, parsing, comparisons, the circuit breaker and latency estimates: pure functions."""

from __future__ import annotations

import hashlib

import pytest

from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.errors import UsageError
from weavenn_cli.runtime.rollout.breaker import CircuitBreaker
from weavenn_cli.runtime.rollout.cohorts import bucket, parse_percent, side_of
from weavenn_cli.runtime.rollout.compare import compare_answers
from weavenn_cli.runtime.rollout.ramp import parse_duration, parse_plan
from weavenn_cli.runtime.rollout.stats import SideCounts, quantile_ms

USERS = [f"user-{n}" for n in range(10_000)]


def test_bucket_is_the_documented_formula_with_its_published_examples() -> None:
    # The README publishes these so another language can check its implementation.
    examples = {
        ("task-service", "alice"): 2746,
        ("task-service", "bob"): 3779,
        ("file-service", "alice"): 9520,
        ("git-service", "user-42"): 186,
    }
    for (service, user), expected in examples.items():
        digest = hashlib.sha256(f"{service}:{user}".encode()).digest()
        assert int.from_bytes(digest[:8], "big") % 10_000 == expected
        assert bucket(service, user) == expected


def test_ten_thousand_users_at_25_percent_put_25_percent_on_the_new_side() -> None:
    new = sum(side_of("task-service", user, 25) == "new" for user in USERS)
    assert abs(new / len(USERS) * 100 - 25) <= 1.5


def test_users_new_at_10_percent_stay_new_at_25_percent() -> None:
    at_10 = {user for user in USERS if side_of("task-service", user, 10) == "new"}
    at_25 = {user for user in USERS if side_of("task-service", user, 25) == "new"}
    assert at_10 and at_10 < at_25


def test_each_service_has_its_own_cohort() -> None:
    tasks = {user for user in USERS if side_of("task-service", user, 50) == "new"}
    files = {user for user in USERS if side_of("file-service", user, 50) == "new"}
    # Independent halves overlap on about a quarter of the users, not on all or none.
    assert abs(len(tasks & files) / len(USERS) * 100 - 25) <= 2


def test_no_user_id_stays_legacy_and_the_ends_are_everyone_or_no_one() -> None:
    assert side_of("task-service", None, 100) == "legacy"
    assert all(side_of("task-service", user, 100) == "new" for user in USERS[:500])
    assert all(side_of("task-service", user, 0) == "legacy" for user in USERS[:500])


@pytest.mark.parametrize("text", ["-1", "101", "25.5", "25%", "ten", "", " ", "1e2", "0x10"])
def test_percent_must_be_a_whole_number_from_0_to_100(text: str) -> None:
    with pytest.raises(UsageError, match="whole number from 0 to 100"):
        parse_percent(text)


def test_percent_accepts_the_ends() -> None:
    assert [parse_percent(t) for t in ("0", "100", " 25 ")] == [0, 100, 25]


def test_durations_and_plans() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("15m") == 900
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    for bad in ("15", "15 minutes", "m", "0s", "-5s"):
        with pytest.raises(UsageError):
            parse_duration(bad)
    assert parse_plan("10,25,50,75,100", current=0) == [10, 25, 50, 75, 100]
    assert parse_plan("25,50", current=25) == [25, 50]
    for bad, current in (("10,10", 0), ("50,25", 0), ("10,25", 20), ("", 0), ("10,x", 0)):
        with pytest.raises(UsageError):
            parse_plan(bad, current)


def test_answers_that_differ_only_in_key_order_or_ignored_fields_agree() -> None:
    legacy = (200, b'{"id": "1", "title": "a", "updated_at": "2026-01-01T00:00:00Z"}')
    new = (200, b'{"updated_at": "2026-02-02T00:00:00Z", "title": "a", "id": "1"}')
    assert compare_answers(legacy, new, frozenset({"updated_at"})) == []
    assert compare_answers(legacy, new, frozenset()) == [
        '$.updated_at: "2026-01-01T00:00:00Z" ≠ "2026-02-02T00:00:00Z"'
    ]


def test_differences_name_the_json_path_status_and_non_json_bodies() -> None:
    legacy = (200, b'{"items": [{"title": "a"}, {"title": "b"}], "next": 1}')
    new = (404, b'{"items": [{"title": "a"}, {"title": "c"}]}')
    assert compare_answers(legacy, new, frozenset()) == [
        "status: 200 ≠ 404",
        '$.items[1].title: "b" ≠ "c"',
        "$.next: only on the legacy side",
    ]
    assert compare_answers((200, b"<html>"), (200, b"<html>"), frozenset()) == []
    assert compare_answers((200, b"<html>"), (200, b"{}"), frozenset())[0].startswith("body:")
    # 1 and true are equal in Python, not in JSON.
    assert compare_answers((200, b"[1]"), (200, b"[true]"), frozenset()) == ["$[0]: 1 ≠ true"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_failures_in_a_row_and_closes_after_a_good_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker("task-service", failures=3, cooldown=30, clock=clock)
    breaker.failed("connect")
    breaker.failed("connect")
    breaker.succeeded()  # the count is of failures in a row
    for _ in range(3):
        assert breaker.allows()
        breaker.failed("connect")
    assert breaker.is_open and not breaker.allows()
    clock.now = 31
    assert breaker.allows()  # the one trial request
    assert not breaker.allows()  # everyone else waits for its outcome
    breaker.failed("http-503")
    assert not breaker.allows()
    clock.now = 62
    assert breaker.allows()
    breaker.succeeded()
    assert not breaker.is_open and breaker.allows()


def test_breaker_replaces_a_trial_that_never_reported() -> None:
    clock = Clock()
    breaker = CircuitBreaker("task-service", failures=1, cooldown=10, clock=clock)
    breaker.failed("timeout")
    clock.now = 10
    assert breaker.allows()
    clock.now = 15
    assert not breaker.allows()
    clock.now = 20
    assert breaker.allows()


def test_p95_is_estimated_within_its_latency_bucket() -> None:
    counts = SideCounts()
    for _ in range(90):
        counts.observe(3, failed=False)  # bucket (2, 5]
    for _ in range(10):
        counts.observe(180, failed=True)  # bucket (150, 200]
    assert counts.requests == 100 and counts.errors == 10
    p95 = quantile_ms(counts.latency)
    assert p95 is not None and 150 < p95 <= 200
    assert quantile_ms(SideCounts().latency) is None


def test_ignored_fields_come_from_a_comma_separated_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROLLOUT_SHADOW_IGNORE_FIELDS", " updated_at, created_at ,,")
    ignored = load_settings().shadow_ignored_fields()
    assert ignored == {"updated_at", "created_at"}
    legacy = (200, b'{"id": 1, "created_at": "a", "items": [{"updated_at": "b"}]}')
    new = (200, b'{"id": 1, "created_at": "c", "items": [{"updated_at": "d"}]}')
    assert compare_answers(legacy, new, ignored) == []
