"""`weavenn rollout`: move users from the monolith to an extracted service, a share at a time."""

from __future__ import annotations

import dataclasses
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from weavenn_cli.commands._shared import (
    get_settings,
    make_table,
    print_json,
    print_rows,
    stderr,
    stdout,
)
from weavenn_cli.runtime.errors import UsageError

if TYPE_CHECKING:
    from weavenn_cli.runtime.rollout.operations import Move, ServiceStatus
    from weavenn_cli.runtime.rollout.stats import SideSummary, Traffic
    from weavenn_cli.runtime.rollout.store import Change, HistoryEntry, RolloutStore


def rollout(
    service: str | None = typer.Argument(
        None,
        metavar="SERVICE",
        help="task-service, file-service or git-service (none: every service).",
    ),
    percent: str | None = typer.Argument(
        None, metavar="PERCENT", help="Share of users the new service serves, 0-100."
    ),
    reason: str | None = typer.Option(None, "--reason", metavar="TEXT", help="Why (recorded)."),
    actor: str | None = typer.Option(
        None, "--actor", metavar="NAME", help="Who makes the change (default: the OS user)."
    ),
    history: bool = typer.Option(False, "--history", help="Show the audit trail."),
    undo: bool = typer.Option(False, "--undo", help="Back to the percentage before the last."),
    who: str | None = typer.Option(
        None, "--who", metavar="USER_ID", help="Which side this user is on."
    ),
    shadow: bool | None = typer.Option(
        None, "--shadow/--no-shadow", help="Compare legacy answers with the new side's."
    ),
    mismatches: bool = typer.Option(
        False, "--mismatches", help="Show samples of shadow comparisons that disagreed."
    ),
    plan: str | None = typer.Option(
        None, "--plan", metavar="P1,P2,...", help="Guarded ramp through these percentages."
    ),
    step_interval: str = typer.Option(
        "15m", "--step-interval", metavar="DURATION", help="Watch time per step (30s, 15m, 1h)."
    ),
    max_error_rate: float = typer.Option(
        1.0, "--max-error-rate", min=0, metavar="PERCENT", help="Abort above this error rate."
    ),
    max_p95_ms: float = typer.Option(
        200.0, "--max-p95-ms", min=0, metavar="MS", help="Abort above this p95 latency."
    ),
    require_verified: bool = typer.Option(
        False,
        "--require-verified",
        help="Past the first step only if the last `migrate verify` found the databases identical.",
    ),
    limit: int = typer.Option(
        20, "--limit", min=1, metavar="N", help="Entries of --history, --mismatches."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    database_url: str | None = typer.Option(
        None, "--database-url", metavar="URL", help="Database (default: DATABASE_URL)."
    ),
) -> None:
    """Route a share of users to an extracted service; shadow mode, guarded ramps, audit."""
    from weavenn_cli.runtime.rollout.cohorts import check_service, parse_percent

    action = _one_action(
        percent=percent is not None,
        history=history,
        undo=undo,
        who=who is not None,
        shadow=shadow is not None,
        mismatches=mismatches,
        plan=plan is not None,
    )
    url = database_url or get_settings().database_url
    if service is None:
        if action:
            raise UsageError(f"{action} needs a SERVICE, e.g. `weavenn rollout task-service`")
        with _store(url) as store:
            _show_all(store, as_json)
        return
    check_service(service)
    wanted = parse_percent(percent) if percent is not None else None
    by = actor or _os_user()
    with _store(url) as store:
        if wanted is not None:
            _show_change(
                store, store.set_percent(service, wanted, actor=by, reason=reason), as_json
            )
        elif undo:
            _show_change(store, store.undo(service, actor=by, reason=reason), as_json)
        elif shadow is not None:
            change = store.set_shadow(service, shadow, actor=by, reason=reason)
            _show_change(store, change, as_json)
        elif history:
            _show_history(store.history(service, limit), as_json)
        elif who is not None:
            _show_who(store, service, who, as_json)
        elif mismatches:
            _show_mismatches(store, service, limit, as_json)
        elif plan is not None:
            limits = (max_error_rate, max_p95_ms)
            ramp = Ramp(plan, step_interval, limits, url if require_verified else None)
            _run_plan(store, service, ramp, by, reason, as_json)
        else:
            _show_status(store, service, as_json)


def _one_action(**given: bool) -> str | None:
    names = {"percent": "PERCENT", "shadow": "--shadow/--no-shadow"}
    chosen = [names.get(name, f"--{name}") for name, on in given.items() if on]
    if len(chosen) > 1:
        raise UsageError(f"{chosen[0]} and {chosen[1]} do not go together: one action at a time")
    return chosen[0] if chosen else None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@contextmanager
def _store(url: str) -> Iterator[RolloutStore]:
    from weavenn_cli.runtime.rollout.store import RolloutStore

    store = RolloutStore.open(url, get_settings())
    try:
        yield store
    finally:
        store.close()


# -- changes ------------------------------------------------------------------------------


def _show_change(store: RolloutStore, change: Change, as_json: bool) -> None:
    from weavenn_cli.runtime.rollout.operations import move_of

    move = move_of(store, change) if change.entry else None
    if as_json:
        print_json(
            {
                "service": change.after.service,
                "changed": change.entry is not None,
                "before": _plain(change.before),
                "after": _plain(change.after),
                "entry": _plain(change.entry),
                "move": _move_json(move),
            }
        )
        return
    before, after = change.before, change.after
    if change.entry is None:
        shadow = "on" if after.shadow else "off"
        _say(f"{after.service}: already at {after.percent} %, shadow {shadow}; unchanged")
        return
    if before.percent != after.percent:
        _say(f"{after.service}: {before.percent} % → {after.percent} % on the new side")
    if before.shadow != after.shadow:
        _say(f"{after.service}: shadow mode {'on' if after.shadow else 'off'}")
    if move is not None:
        _say(_move_text(move))
    stderr.print("every gateway and monolith process follows within 2 seconds")


def _move_text(move: Move) -> str:
    if not move.seen:
        return "no users seen on these routes in the last 7 days"
    return (
        f"moves {move.moving} of the {move.seen} users seen in the last 7 days "
        f"({move.share:.1f} %) to the {move.to} side"
    )


def _move_json(move: Move | None) -> dict[str, Any] | None:
    if move is None:
        return None
    return {**_plain(move), "share_percent": round(move.share, 2)}


# -- state --------------------------------------------------------------------------------


def _show_status(store: RolloutStore, service: str, as_json: bool) -> None:
    from weavenn_cli.runtime.rollout.operations import status_of

    status = status_of(store, service)
    if as_json:
        print_json(_status_json(status))
        return
    state, last = status.state, status.last_change
    source = "" if state.source == "database" else f" (from {state.source}, not stored yet)"
    _say(f"{service}: {state.percent} % of users on the new side{source}")
    _say(f"shadow mode: {'on' if state.shadow else 'off'}")
    if last is not None:
        _say(
            f"last change: {_change_text(last)} by {last.actor} at {_when(last.created_at)}"
            + (f": {last.reason}" if last.reason else "")
        )
    _print_traffic(status.traffic)


def _print_traffic(traffic: Traffic) -> None:
    if not traffic.instances:
        _say("traffic: no process reported requests on these routes in the last 5 min")
        return
    table = make_table(
        "side",
        "requests",
        "errors",
        "error rate",
        "p95 ms",
        "fallbacks",
        title=f"last 5 min, {traffic.instances} process(es)",
    )
    for side, summary in (("legacy", traffic.legacy), ("new", traffic.new)):
        table.add_row(
            side,
            str(summary.requests),
            str(summary.errors),
            f"{summary.error_rate:.2f} %",
            _ms(summary.p95_ms),
            str(summary.fallbacks) if side == "new" else "",
        )
    stdout.print(table)
    _say(
        f"shadow: {traffic.shadow_compared} compared, {traffic.shadow_mismatched} mismatched, "
        f"{traffic.shadow_dropped} dropped"
    )


def _show_all(store: RolloutStore, as_json: bool) -> None:
    from weavenn_cli.runtime.rollout.cohorts import SERVICES
    from weavenn_cli.runtime.rollout.operations import status_of

    statuses = [status_of(store, service) for service in SERVICES]
    if as_json:
        print_json([_status_json(status) for status in statuses])
        return
    print_rows(
        ("service", "new %", "shadow", "last change", "new requests 5m", "errors", "p95 ms"),
        (
            (
                s.state.service,
                s.state.percent,
                "on" if s.state.shadow else "off",
                f"{_when(s.last_change.created_at)} by {s.last_change.actor}"
                if s.last_change
                else f"never ({s.state.source})",
                s.traffic.new.requests,
                f"{s.traffic.new.error_rate:.2f} %",
                _ms(s.traffic.new.p95_ms),
            )
            for s in statuses
        ),
    )


def _status_json(status: ServiceStatus) -> dict[str, Any]:
    traffic = status.traffic
    return {
        **_plain(status.state),
        "last_change": _plain(status.last_change),
        "traffic": {
            "since": _plain(traffic.since),
            "processes": traffic.instances,
            "legacy": _side_json(traffic.legacy),
            "new": _side_json(traffic.new),
            "shadow": {
                "compared": traffic.shadow_compared,
                "mismatched": traffic.shadow_mismatched,
                "dropped": traffic.shadow_dropped,
            },
        },
    }


def _side_json(summary: SideSummary) -> dict[str, Any]:
    p95 = None if summary.p95_ms is None else round(summary.p95_ms, 2)
    return {**_plain(summary), "p95_ms": p95, "error_rate": round(summary.error_rate, 3)}


# -- history, who, mismatches --------------------------------------------------------------


def _show_history(entries: list[HistoryEntry], as_json: bool) -> None:
    if as_json:
        print_json([_plain(entry) for entry in entries])
        return
    print_rows(
        ("#", "when", "change", "actor", "reason"),
        ((e.id, _when(e.created_at), _change_text(e), e.actor, e.reason or "") for e in entries),
    )


def _change_text(entry: HistoryEntry) -> str:
    if entry.old_percent is None:
        return f"starts at {entry.new_percent} %"
    parts = []
    if entry.old_percent != entry.new_percent:
        parts.append(f"{entry.old_percent} → {entry.new_percent} %")
    if entry.old_shadow != entry.new_shadow:
        parts.append(f"shadow {'on' if entry.new_shadow else 'off'}")
    return ", ".join(parts)


def _show_who(store: RolloutStore, service: str, user_id: str, as_json: bool) -> None:
    from weavenn_cli.runtime.rollout.cohorts import threshold
    from weavenn_cli.runtime.rollout.operations import placement_of

    placed = placement_of(store, service, user_id)
    if as_json:
        print_json(_plain(placed))
        return
    relation = "<" if placed.side == "new" else "≥"
    _say(
        f"{user_id!r} is on the {placed.side} side of {service}: bucket {placed.bucket} "
        f"{relation} {threshold(placed.percent)} ({placed.percent} %)"
    )


def _show_mismatches(store: RolloutStore, service: str, limit: int, as_json: bool) -> None:
    samples = store.mismatches(service, limit)
    if as_json:
        print_json([_plain(sample) for sample in samples])
        return
    if not samples:
        _say(f"{service}: no shadow mismatch recorded")
        return
    print_rows(
        ("#", "when", "request", "legacy", "new", "differences"),
        (
            (
                m.id,
                _when(m.created_at),
                f"{m.method} {m.target}",
                m.legacy_status,
                m.new_status if m.new_status is not None else "no answer",
                "; ".join(m.differences),
            )
            for m in samples
        ),
    )
    stderr.print("full bodies: add --json")


# -- guarded ramp -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ramp:
    """The options of a guarded ramp, as given."""

    plan: str
    step_interval: str
    limits: tuple[float, float]
    verified_in: str | None  # --require-verified: the database whose verify runs count


def _run_plan(
    store: RolloutStore, service: str, given: Ramp, actor: str, reason: str | None, as_json: bool
) -> None:
    from weavenn_cli.runtime.rollout import ramp

    interval = ramp.parse_duration(given.step_interval)
    plan = ramp.parse_plan(given.plan, store.state(service).percent)
    url = get_settings().service_url(service)
    limits = given.limits
    stderr.print(
        f"{service}: ramp {' → '.join(f'{p} %' for p in plan)}, {given.step_interval} per step, "
        f"abort above {limits[0]:g} % errors or p95 {limits[1]:g} ms, or when {url}/ready "
        f"fails {ramp.HEALTH_FAILURES} times",
        markup=False,
    )
    gate = ramp.verified_gate(given.verified_in) if given.verified_in else None
    try:
        with _ramp_progress() as on_tick:
            changes = ramp.run_ramp(
                store,
                service,
                plan,
                interval,
                ramp.Limits(*limits),
                ramp.ready_probe(url),
                actor=actor,
                reason=reason,
                on_tick=on_tick,
                past_first_step=gate,
            )
    except KeyboardInterrupt:
        now = store.state(service).percent
        stderr.print(
            f"interrupted: {service} stays at {now} % (roll back with "
            f"`weavenn rollout {service} 0` or `--undo`)"
        )
        raise typer.Exit(130) from None
    if as_json:
        print_json({"service": service, "completed": True, "steps": plan})
        return
    _say(f"{service}: ramp complete at {plan[-1]} % ({len(changes)} steps)")


@contextmanager
def _ramp_progress() -> Iterator[Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from weavenn_cli.runtime.rollout.ramp import Tick

    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr) as progress:
        bars: dict[int, Any] = {}

        def on_tick(tick: Tick) -> None:
            if tick.step not in bars:
                bars[tick.step] = progress.add_task("", total=tick.interval)
            new = tick.new
            progress.update(
                bars[tick.step],
                completed=tick.elapsed,
                description=(
                    f"step {tick.step}/{tick.steps} at {tick.percent:>3} %: {new.requests} new "
                    f"requests, {new.error_rate:.1f} % errors, p95 {_ms(new.p95_ms)} ms"
                    + (f", health failed {tick.health_failures}x" if tick.health_failures else "")
                ),
            )

        yield on_tick


# -- formatting ---------------------------------------------------------------------------


def _say(text: str) -> None:
    """One line of data: no markup (reasons and user ids are free text), wrapped by the
    terminal rather than cut into lines."""
    stdout.print(text, soft_wrap=True, markup=False, highlight=False)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _plain(value: Any) -> Any:
    """Dataclasses and datetimes as JSON values (timestamps in ISO 8601)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
