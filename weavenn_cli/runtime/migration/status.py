"""`weavenn migrate status`: the design's migration timeline as a checklist.

1. schema at head on both databases, 2. dual-write on, 3. backfill of every application
table, 4. verify identical, 5. dual-write off, reads from PostgreSQL only, 6. retire SQLite.
Each item is read from the databases themselves; the first one not done is the next step.
The task service's rollout percentage is shown alongside; once a rollout has started, the
users it has not moved yet are served by the monolith from the old database, so dual-write
must stay on until it reaches 100 %.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from weavenn_cli.runtime import schema
from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.db.engine import describe_url
from weavenn_cli.runtime.errors import WeavennError
from weavenn_cli.runtime.migration import backfill, dual_write, verify
from weavenn_cli.runtime.migration.access import missing_sqlite_file
from weavenn_cli.runtime.migration.tables import application_tables
from weavenn_cli.runtime.rollout.store import RolloutState, RolloutStore

State = Literal["ok", "todo", "fail", "info"]


@dataclass(frozen=True)
class Check:
    item: str
    state: State
    detail: str


@dataclass
class MigrationStatus:
    checks: list[Check] = field(default_factory=list)
    next_step: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"checks": [asdict(check) for check in self.checks], "next_step": self.next_step}


def secondary_url(settings: Settings) -> str:
    """The other database of the migration: SECONDARY_DATABASE_URL, or the default SQLite."""
    return settings.secondary_or_default_url()


def migration_status(settings: Settings) -> MigrationStatus:
    primary, secondary = settings.database_url, secondary_url(settings)
    status = MigrationStatus()
    steps: list[str] = []
    primary_ok = _schema_check(status, "primary", primary, steps)
    secondary_ok = _schema_check(status, "secondary", secondary, steps)
    if not primary_ok:
        status.next_step = steps[0]
        return status
    switch = dual_write.dual_write_status(primary, settings.dual_write_enabled)
    # The monolith, whose primary is the old database, records its failed mirror writes there.
    pending = switch.pending_failures
    if secondary_ok:
        pending += dual_write.pending_failures(secondary)
    backfilled_at = _backfill_checks(status, primary)
    last = verify.last_verify_result(primary)
    verified = _verify_check(status, last, backfilled_at)
    rollout = _task_service_rollout(settings, primary)
    # Once a rollout has started, the monolith serves the users below 100 % from the old
    # database: without dual-write their writes would never reach PostgreSQL.
    legacy_share = 100 - rollout.percent if rollout.source == "database" else 0
    switched_off_early = not switch.enabled and verified and legacy_share > 0
    detail = f"{'on' if switch.enabled else 'off'}, {pending} pending failures"
    if switched_off_early:
        detail += f", while the monolith still serves {legacy_share} % of users from SQLite"
    dual_state: State = "fail" if switched_off_early else "ok"
    if not (switch.enabled or verified):
        dual_state = "todo"
    status.checks.insert(2, Check("dual-write", dual_state, detail))
    status.checks.append(
        Check("task-service rollout", "info", f"{rollout.percent} % of users on the task service")
    )
    if switched_off_early:
        steps.append("weavenn migrate dual-write on, or: weavenn rollout task-service 100")
    if not switch.enabled and backfilled_at is None and not verified:
        steps.append("weavenn migrate dual-write on")
    if backfilled_at is None:
        steps.append("weavenn migrate backfill")
    if pending:
        steps.append("weavenn migrate dual-write replay")
    if not verified:
        steps.append("weavenn migrate verify --repair")
    if switch.enabled and legacy_share:
        steps.append(
            f"weavenn rollout task-service 100 (the monolith still serves {legacy_share} % "
            "of users), then: weavenn migrate dual-write off"
        )
    elif switch.enabled:
        steps.append("read tasks from PostgreSQL only, then: weavenn migrate dual-write off")
    steps.append(f"retire the old database {describe_url(secondary)} (keep a copy)")
    status.next_step = steps[0]
    return status


def _task_service_rollout(settings: Settings, primary: str) -> RolloutState:
    """How many users the extracted task service serves (`weavenn rollout task-service`)."""
    store = RolloutStore.open(primary, settings)
    try:
        return store.state("task-service")
    finally:
        store.close()


def _schema_check(status: MigrationStatus, role: str, url: str, steps: list[str]) -> bool:
    item = f"{role} schema at head ({describe_url(url)})"
    missing = missing_sqlite_file(url)
    if missing:
        status.checks.append(Check(item, "fail", f"{missing} does not exist"))
        setting = "DATABASE_URL" if role == "primary" else "SECONDARY_DATABASE_URL"
        steps.append(f"point {setting} at the existing database")
        return False
    try:
        at_head = schema.is_at_head(url)
    except WeavennError as error:
        status.checks.append(Check(item, "fail", error.message))
        steps.append(f"make {describe_url(url)} reachable")
        return False
    current = ", ".join(schema.current_revisions(url)) or "none"
    if not at_head:
        status.checks.append(Check(item, "todo", f"at revision {current}"))
        steps.append(f"weavenn migrate db --database-url {describe_url(url)}")
        return False
    status.checks.append(Check(item, "ok", f"revision {current}"))
    return True


def _backfill_checks(status: MigrationStatus, primary: str) -> datetime | None:
    """One line per application table; returns when the last one finished, or None."""
    recorded = backfill.checkpoints(primary)
    finished: list[datetime] = []
    for table in application_tables():
        checkpoint = recorded.get(table.name)
        item = f"backfill {table.name}"
        if checkpoint is None:
            status.checks.append(Check(item, "todo", "not started"))
            continue
        done = f"{checkpoint['rows_read']}"
        if checkpoint["source_rows"] is not None:
            done += f" of {checkpoint['source_rows']}"
        counts = (
            f"{done} rows read, {checkpoint['rows_written']} written, "
            f"{checkpoint['rows_rejected']} rejected"
        )
        if checkpoint["finished_at"] is None:
            status.checks.append(Check(item, "todo", f"in progress: {counts}"))
            continue
        status.checks.append(
            Check(item, "ok", f"{counts}, finished {checkpoint['finished_at']:%Y-%m-%d %H:%M} UTC")
        )
        finished.append(checkpoint["finished_at"])
    if len(finished) < len(application_tables()):
        return None
    return max(finished)


def _verify_check(
    status: MigrationStatus, last: verify.VerifyResult | None, backfilled_at: datetime | None
) -> bool:
    if last is None:
        status.checks.append(Check("verify", "todo", "never run"))
        return False
    when = f"{last.finished_at:%Y-%m-%d %H:%M} UTC"
    if not last.identical:
        status.checks.append(Check("verify", "fail", f"{last.differences} differences at {when}"))
        return False
    if backfilled_at is not None and last.finished_at < backfilled_at:
        status.checks.append(Check("verify", "todo", f"identical at {when}, before the backfill"))
        return False
    status.checks.append(Check("verify", "ok", f"identical at {when}"))
    return True
