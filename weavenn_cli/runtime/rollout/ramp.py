"""Guarded ramps: raise a percentage step by step, watching the new side between steps.

After each step the ramp waits `interval`, reading what every gateway reported for the new
side since the step began and probing the service's `/ready`. The new side's error rate or
p95 over its limit, or 3 failed probes in a row, set the percentage back to 0, record why,
and end the ramp with an error. Ctrl-C (KeyboardInterrupt) leaves the percentage as it is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import httpx

from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.errors import UsageError, WeavennError
from weavenn_cli.runtime.rollout.cohorts import parse_percent
from weavenn_cli.runtime.rollout.stats import SideSummary
from weavenn_cli.runtime.rollout.store import Change, RolloutStore

HEALTH_FAILURES = 3
HEALTH_TIMEOUT_SECONDS = 3.0
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


class RampAborted(WeavennError):
    """The new side misbehaved: the percentage is back at 0."""


@dataclass(frozen=True)
class Limits:
    max_error_rate: float  # percent of the new side's requests
    max_p95_ms: float


@dataclass(frozen=True)
class Tick:
    """Where the ramp is, for progress display."""

    step: int
    steps: int
    percent: int
    elapsed: float
    interval: float
    new: SideSummary
    health_failures: int


HealthProbe = Callable[[], str | None]
# None when the ramp may go past its first step, else why not.
Gate = Callable[[], str | None]


def parse_duration(text: str) -> float:
    """Seconds in `30s`, `15m`, `1h`, `1h30m`, `500ms`."""
    cleaned = text.strip().lower()
    parts = _DURATION.findall(cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise UsageError(f"{text!r} is not a duration: write it like 30s, 15m, 1h or 1h30m")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise UsageError(f"duration {text!r} must be longer than zero")
    return seconds


def parse_plan(text: str, current: int) -> list[int]:
    """Rising percentages, none below where the service is now."""
    steps = [parse_percent(part) for part in text.split(",") if part.strip()]
    if not steps:
        raise UsageError("--plan needs percentages, e.g. --plan 10,25,50,75,100")
    if any(b <= a for a, b in pairwise(steps)):
        raise UsageError(f"--plan must rise step by step, e.g. 10,25,50,75,100, not {text!r}")
    if steps[0] < current:
        raise UsageError(
            f"the service is at {current} %, above the plan's first step {steps[0]} %: "
            "start the plan at or above the current value"
        )
    return steps


def ready_probe(base_url: str) -> HealthProbe:
    """GET /ready of the service: None when it answers 200, else what went wrong."""
    url = base_url.rstrip("/") + "/ready"

    def probe() -> str | None:
        try:
            answer = httpx.get(url, timeout=HEALTH_TIMEOUT_SECONDS)
        except httpx.HTTPError as error:
            return f"{url}: {type(error).__name__}"
        return None if answer.status_code == 200 else f"{url} answered {answer.status_code}"

    return probe


def verified_gate(url: str) -> Gate:
    """Past the first step only when the last `weavenn migrate verify` found no difference."""
    from weavenn_cli.runtime.migration.verify import last_verify_result

    def gate() -> str | None:
        last = last_verify_result(url)
        if last is None:
            return "`weavenn migrate verify` has never run"
        when = f"{last.finished_at:%Y-%m-%d %H:%M} UTC"
        if not last.identical:
            return (
                f"the last `weavenn migrate verify` ({when}) found {last.differences} differences"
            )
        return None

    return gate


def poll_interval(step_interval: float) -> float:
    return min(5.0, max(0.5, step_interval / 10))


def run_ramp(
    store: RolloutStore,
    service: str,
    plan: list[int],
    interval: float,
    limits: Limits,
    health: HealthProbe,
    *,
    actor: str,
    reason: str | None = None,
    on_tick: Callable[[Tick], None] = lambda tick: None,
    past_first_step: Gate | None = None,
) -> list[Change]:
    """Run the plan to its end, or raise RampAborted after setting the percentage to 0.

    With `past_first_step`, the ramp stops after its first step while the gate says no,
    leaving that first percentage in place (nothing went wrong on the new side).
    """
    changes = []
    for index, percent in enumerate(plan, start=1):
        refused = past_first_step() if past_first_step and index == 2 else None
        if refused:
            raise WeavennError(
                f"{service}: stays at {plan[0]} %, not going further: {refused} "
                "(--require-verified)"
            )
        note = f"guarded ramp, step {index}/{len(plan)}" + (f": {reason}" if reason else "")
        changes.append(store.set_percent(service, percent, actor=actor, reason=note))
        trouble = _watch(
            store, service, (index, len(plan), percent), interval, limits, health, on_tick
        )
        if trouble is not None:
            why = f"guarded ramp aborted at {percent} %: {trouble}"
            store.set_percent(service, 0, actor=actor, reason=why)
            raise RampAborted(f"{service}: {why}; set back to 0 %")
    return changes


def _watch(
    store: RolloutStore,
    service: str,
    where: tuple[int, int, int],
    interval: float,
    limits: Limits,
    health: HealthProbe,
    on_tick: Callable[[Tick], None],
) -> str | None:
    """Watch one step for `interval` seconds; what went wrong, or None."""
    since, started = utcnow(), time.monotonic()
    failures, elapsed = 0, 0.0
    while elapsed < interval:
        time.sleep(min(poll_interval(interval), interval - elapsed))
        elapsed = time.monotonic() - started
        new = store.traffic(service, since).new
        problem = health()
        failures = failures + 1 if problem else 0
        on_tick(Tick(*where, min(elapsed, interval), interval, new, failures))
        if new.requests and new.error_rate > limits.max_error_rate:
            return (
                f"new-side error rate {new.error_rate:.1f} % > {limits.max_error_rate:g} % "
                f"({new.errors} of {new.requests} requests)"
            )
        if new.p95_ms is not None and new.p95_ms > limits.max_p95_ms:
            return f"new-side p95 {new.p95_ms:.0f} ms > {limits.max_p95_ms:g} ms"
        if failures >= HEALTH_FAILURES:
            return f"health check failed {failures} times in a row ({problem})"
    return None
