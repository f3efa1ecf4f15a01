"""Rollout percentages and shadow switches in the database, with their audit trail.

Every replica and every command reads the same rows. A service without a row runs at its
starting value: `<SERVICE>_ROLLOUT_PERCENTAGE` (for the task service also the design's
`NEW_TASK_SERVICE_ROLLOUT_PERCENTAGE`), else 0. A gateway that starts with such a variable
writes it into the database when there is no row yet, so commands see what it routes by.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import Engine, exc
from sqlalchemy.orm import Session, sessionmaker

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.db.engine import (
    connection_error,
    describe_url,
    make_engine,
    reader_engine,
)
from weavenn_cli.runtime.db.models import (
    Rollout,
    RolloutEvent,
    RolloutMismatch,
    RolloutStat,
    RolloutUser,
)
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.errors import DatabaseError, WeavennError
from weavenn_cli.runtime.rollout.cohorts import SERVICES
from weavenn_cli.runtime.rollout.stats import SideCounts, SideSummary, Traffic, Window

MISMATCH_SAMPLES_KEPT = 100
MISMATCH_BODY_BYTES = 64 * 1024
USERS = cast(sa.Table, RolloutUser.__table__)
STATS = cast(sa.Table, RolloutStat.__table__)


@dataclass(frozen=True)
class RolloutState:
    service: str
    percent: int
    shadow: bool
    # "database", or the setting the value comes from while the database has none
    source: str
    updated_at: datetime | None = None
    updated_by: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    service: str
    old_percent: int | None
    new_percent: int
    old_shadow: bool | None
    new_shadow: bool
    actor: str
    reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class Change:
    """What a command changed; `entry` is None when the value was already there."""

    before: RolloutState
    after: RolloutState
    entry: HistoryEntry | None


@dataclass(frozen=True)
class Mismatch:
    id: int
    service: str
    method: str
    target: str
    legacy_status: int
    new_status: int | None
    legacy_body: str
    new_body: str
    differences: list[str]
    created_at: datetime


def starting_percent(settings: Settings, service: str) -> tuple[int, str]:
    """The value a service runs at while the database has no row, and where it comes from."""
    candidates = {
        "task-service": ("task_service_rollout_percentage", "new_task_service_rollout_percentage"),
        "file-service": ("file_service_rollout_percentage",),
        "git-service": ("git_service_rollout_percentage",),
    }[service]
    for field in candidates:
        value = getattr(settings, field)
        if value is not None:
            return int(value), field.upper()
    return 0, "default"


def starting_state(settings: Settings, service: str) -> RolloutState:
    percent, source = starting_percent(settings, service)
    return RolloutState(service, percent, False, source)


class RolloutStore:
    def __init__(self, engine: Engine, settings: Settings, *, owns_engine: bool = False) -> None:
        self.engine = engine
        self.settings = settings
        self.sessions = sessionmaker(bind=engine, expire_on_commit=False)
        # Every serving process reads the state twice a second: on SQLite, without the write lock.
        self.reads = sessionmaker(bind=reader_engine(engine), expire_on_commit=False)
        self._owns_engine = owns_engine

    @classmethod
    def open(cls, url: str, settings: Settings, **engine_options: Any) -> RolloutStore:
        return cls(make_engine(url, **engine_options), settings, owns_engine=True)

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

    # -- reading ------------------------------------------------------------------------

    def states(self) -> dict[str, RolloutState]:
        with self._reading() as session:
            rows = {row.service: row for row in session.scalars(sa.select(Rollout))}
        return {service: self._state(service, rows.get(service)) for service in SERVICES}

    def state(self, service: str) -> RolloutState:
        return self.states()[service]

    def history(self, service: str, limit: int = 50) -> list[HistoryEntry]:
        statement = (
            sa.select(RolloutEvent)
            .where(RolloutEvent.service == service)
            .order_by(RolloutEvent.id.desc())
            .limit(limit)
        )
        with self._reading() as session:
            return [_entry(row) for row in session.scalars(statement)]

    def last_change(self, service: str) -> HistoryEntry | None:
        entries = self.history(service, limit=1)
        return entries[0] if entries else None

    def mismatches(self, service: str, limit: int = 20) -> list[Mismatch]:
        statement = (
            sa.select(RolloutMismatch)
            .where(RolloutMismatch.service == service)
            .order_by(RolloutMismatch.id.desc())
            .limit(limit)
        )
        with self._reading() as session:
            return [_mismatch(row) for row in session.scalars(statement)]

    def users_seen(self, service: str, since: datetime, buckets: range) -> tuple[int, int]:
        """(users seen since `since` whose bucket is in `buckets`, all users seen since)."""
        seen = sa.and_(USERS.c.service == service, USERS.c.last_seen_at >= since)
        in_range = sa.and_(USERS.c.bucket >= buckets.start, USERS.c.bucket < buckets.stop)
        statement = sa.select(sa.func.count().filter(in_range), sa.func.count()).where(seen)
        with self._reading() as session:
            moving, total = session.execute(statement).one()
        return int(moving), int(total)

    def traffic(self, service: str, since: datetime) -> Traffic:
        """What every gateway process reported for `service` in windows ending after `since`."""
        statement = sa.select(STATS).where(STATS.c.service == service, STATS.c.ended_at >= since)
        legacy, new = SideCounts(), SideCounts()
        instances: set[str] = set()
        shadow = [0, 0, 0]
        with self._reading() as session:
            for row in session.execute(statement):
                instances.add(row.instance)
                legacy.add(row.legacy_requests, row.legacy_errors, 0, row.legacy_latency)
                new.add(row.new_requests, row.new_errors, row.new_fallbacks, row.new_latency)
                shadow[0] += row.shadow_compared
                shadow[1] += row.shadow_mismatched
                shadow[2] += row.shadow_dropped
        return Traffic(since, len(instances), SideSummary.of(legacy), SideSummary.of(new), *shadow)

    # -- changing -----------------------------------------------------------------------

    def set_percent(
        self, service: str, percent: int, *, actor: str, reason: str | None = None
    ) -> Change:
        return self._change(service, actor, reason, percent=percent)

    def set_shadow(
        self, service: str, shadow: bool, *, actor: str, reason: str | None = None
    ) -> Change:
        return self._change(service, actor, reason, shadow=shadow)

    def undo(self, service: str, *, actor: str, reason: str | None = None) -> Change:
        """Back to the percentage before the last change, recorded as a change of its own."""
        changed = RolloutEvent.old_percent != RolloutEvent.new_percent
        statement = (
            sa.select(RolloutEvent)
            .where(RolloutEvent.service == service, changed)
            .order_by(RolloutEvent.id.desc())
            .limit(1)
        )
        with self._reading() as session:
            last = session.scalars(statement).first()
        if last is None or last.old_percent is None:
            raise WeavennError(
                f"nothing to undo: {service} has no recorded percentage change "
                f"(see `weavenn rollout {service} --history`)"
            )
        note = f"undo of change #{last.id} ({last.old_percent} → {last.new_percent})"
        return self.set_percent(
            service,
            last.old_percent,
            actor=actor,
            reason=f"{note}: {reason}" if reason else note,
        )

    def seed_from_settings(self, actor: str) -> list[Change]:
        """Store the starting values given by settings for services without a row."""
        changes = []
        for service in SERVICES:
            _, source = starting_percent(self.settings, service)
            if source == "default":
                continue
            try:
                with self._writing() as session:
                    if session.get(Rollout, service) is not None:
                        continue
                    before = self._state(service, None)
                    row = self._new_row(service, actor)
                    session.add(row)
                    reason = f"starting value from {source}"
                    event = self._event(session, service, None, row, actor, reason)
            except exc.IntegrityError:
                continue  # another replica stored it first
            changes.append(Change(before, self._state(service, row), event))
        return changes

    def record_mismatch(
        self,
        service: str,
        method: str,
        target: str,
        legacy: tuple[int, str],
        new: tuple[int | None, str],
        differences: list[str],
    ) -> None:
        """Keep a sample of a disagreement: the newest few per service, bodies cut short."""
        with self._writing() as session:
            session.add(
                RolloutMismatch(
                    service=service,
                    method=method,
                    target=target,
                    legacy_status=legacy[0],
                    new_status=new[0],
                    legacy_body=legacy[1][:MISMATCH_BODY_BYTES],
                    new_body=new[1][:MISMATCH_BODY_BYTES],
                    differences=differences,
                    created_at=utcnow(),
                )
            )
            session.flush()
            oldest_kept = (
                sa.select(RolloutMismatch.id)
                .where(RolloutMismatch.service == service)
                .order_by(RolloutMismatch.id.desc())
                .offset(MISMATCH_SAMPLES_KEPT - 1)
                .limit(1)
                .scalar_subquery()
            )
            session.execute(
                sa.delete(RolloutMismatch).where(
                    RolloutMismatch.service == service, RolloutMismatch.id < oldest_kept
                )
            )

    def record_users(self, service: str, buckets: dict[str, int], seen_at: datetime) -> None:
        """Upsert the users seen in a window (keys as `cohorts.user_key` gives them)."""
        if not buckets:
            return
        rows = [
            {"service": service, "user_key": key, "bucket": bucket, "last_seen_at": seen_at}
            for key, bucket in buckets.items()
        ]
        statement = _dialect_insert(self.engine, USERS)
        statement = statement.on_conflict_do_update(
            index_elements=[USERS.c.service, USERS.c.user_key],
            set_={"last_seen_at": statement.excluded.last_seen_at},
        )
        with self._writing() as session:
            session.execute(statement, rows)

    def record_window(self, instance: str, window: Window) -> None:
        """One row per service this process saw traffic for, and the users it saw."""
        rows = [
            {
                "service": service,
                "instance": instance,
                "started_at": window.started_at,
                "ended_at": window.ended_at,
                "legacy_requests": counts.legacy.requests,
                "legacy_errors": counts.legacy.errors,
                "legacy_latency": counts.legacy.latency,
                "new_requests": counts.new.requests,
                "new_errors": counts.new.errors,
                "new_fallbacks": counts.new.fallbacks,
                "new_latency": counts.new.latency,
                "shadow_compared": counts.shadow_compared,
                "shadow_mismatched": counts.shadow_mismatched,
                "shadow_dropped": counts.shadow_dropped,
            }
            for service, counts in window.services.items()
        ]
        if rows:
            with self._writing() as session:
                session.execute(sa.insert(STATS), rows)
        for service, counts in window.services.items():
            self.record_users(service, counts.users, window.ended_at)

    def prune(self, stats_before: datetime, users_before: datetime) -> None:
        """Forget old windows and users not seen for a long time."""
        with self._writing() as session:
            session.execute(sa.delete(STATS).where(STATS.c.ended_at < stats_before))
            session.execute(sa.delete(USERS).where(USERS.c.last_seen_at < users_before))

    # -- internals ----------------------------------------------------------------------

    def _change(
        self,
        service: str,
        actor: str,
        reason: str | None,
        *,
        percent: int | None = None,
        shadow: bool | None = None,
    ) -> Change:
        try:
            return self._change_once(service, actor, reason, percent, shadow)
        except exc.IntegrityError:
            # Two first changes raced to insert the row; the other one's is there now.
            return self._change_once(service, actor, reason, percent, shadow)

    def _change_once(
        self,
        service: str,
        actor: str,
        reason: str | None,
        percent: int | None,
        shadow: bool | None,
    ) -> Change:
        with self._writing() as session:
            # SQLite holds the write lock from BEGIN; PostgreSQL locks the row.
            row = session.scalars(
                sa.select(Rollout).where(Rollout.service == service).with_for_update()
            ).first()
            before = self._state(service, row)
            old = (before.percent, before.shadow)
            wanted = (
                before.percent if percent is None else percent,
                before.shadow if shadow is None else shadow,
            )
            if wanted == old:
                return Change(before, before, None)
            if row is None:
                row = self._new_row(service, actor)
                session.add(row)
            row.percent, row.shadow = wanted
            row.updated_at = utcnow()
            row.updated_by = actor
            event = self._event(session, service, old, row, actor, reason)
            return Change(before, self._state(service, row), event)

    def _new_row(self, service: str, actor: str) -> Rollout:
        percent, _ = starting_percent(self.settings, service)
        return Rollout(
            service=service, percent=percent, shadow=False, updated_at=utcnow(), updated_by=actor
        )

    def _event(
        self,
        session: Session,
        service: str,
        old: tuple[int, bool] | None,
        row: Rollout,
        actor: str,
        reason: str | None,
    ) -> HistoryEntry:
        event = RolloutEvent(
            service=service,
            old_percent=old[0] if old else None,
            new_percent=row.percent,
            old_shadow=old[1] if old else None,
            new_shadow=row.shadow,
            actor=actor,
            reason=reason or None,
            created_at=row.updated_at,
        )
        session.add(event)
        session.flush()
        return _entry(event)

    def _state(self, service: str, row: Rollout | None) -> RolloutState:
        if row is None:
            return starting_state(self.settings, service)
        return RolloutState(
            service, row.percent, row.shadow, "database", row.updated_at, row.updated_by
        )

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._database_errors(), self.reads() as session:
            yield session

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with self._database_errors(), self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        try:
            yield
        except (exc.OperationalError, exc.ProgrammingError) as error:
            text = str(error.orig).lower()
            if "no such table" in text or "does not exist" in text:
                raise DatabaseError(
                    f"{describe_url(self.engine.url)} has no rollout tables: run "
                    "`weavenn migrate db`"
                ) from None
            raise connection_error(self.engine.url, error) from None


def _dialect_insert(engine: Engine, table: sa.Table) -> Any:
    """INSERT with ON CONFLICT, which SQLAlchemy offers per dialect."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _entry(row: RolloutEvent) -> HistoryEntry:
    return HistoryEntry(
        row.id,
        row.service,
        row.old_percent,
        row.new_percent,
        row.old_shadow,
        row.new_shadow,
        row.actor,
        row.reason,
        row.created_at,
    )


def _mismatch(row: RolloutMismatch) -> Mismatch:
    return Mismatch(
        row.id,
        row.service,
        row.method,
        row.target,
        row.legacy_status,
        row.new_status,
        row.legacy_body,
        row.new_body,
        list(row.differences or []),
        row.created_at,
    )
