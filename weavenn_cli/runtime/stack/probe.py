"""What the stack shows: its processes (from the state file) and what it has done (from the
database, the bus and the vault's git history). One snapshot for the live panel of `up` and
for `weavenn status`.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.errors import WeavennError
from weavenn_cli.runtime.stack.state import ProcessRecord, SupervisorRecord

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from weavenn_cli.runtime.bus.transport import Transport

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class CommitView:
    commit: str
    message: str
    date: str


@dataclass
class StackFacts:
    """Counts that may be unknown (None) when a part of the stack does not answer."""

    api_answers: bool = False
    notes_indexed: int | None = None
    outbox_pending: int | None = None
    queued: int | None = None
    idle_queued: int | None = None
    """Messages in queues that no process of the stack reads (consumers off or not configured)."""
    dead_letters: int | None = None
    last_commit: CommitView | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def events_pending(self) -> int | None:
        """Events not handled yet: waiting for the relay, or queued (ready, in hand, retrying)."""
        if self.outbox_pending is None or self.queued is None:
            return None
        return self.outbox_pending + self.queued


@dataclass(frozen=True)
class ProcessView:
    name: str
    state: str
    pid: int | None
    uptime_seconds: float | None
    restarts: int
    restart_in_seconds: float | None
    last_exit: int | None
    log: str | None
    note: str | None


@dataclass
class StackStatus:
    running: bool
    supervisor_pid: int | None
    state: str
    api_url: str | None
    vault: str
    transport: str
    log_dir: str | None
    processes: list[ProcessView]
    facts: StackFacts

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        facts = data.pop("facts")
        facts["events_pending"] = self.facts.events_pending
        return {**data, **facts}


def process_views(records: list[ProcessRecord], now: float | None = None) -> list[ProcessView]:
    now = time.time() if now is None else now
    return [
        ProcessView(
            name=r.name,
            state=r.state,
            pid=r.pid,
            uptime_seconds=round(now - r.started_at, 1) if r.started_at is not None else None,
            restarts=r.restarts,
            restart_in_seconds=(
                round(max(r.restart_at - now, 0.0), 1) if r.restart_at is not None else None
            ),
            last_exit=r.last_exit,
            log=r.log,
            note=r.note,
        )
        for r in records
    ]


def active_queues(records: list[ProcessRecord]) -> frozenset[str]:
    """The queues the stack's running consumers read."""
    idle = ("disabled", "not configured")
    return frozenset(r.queue for r in records if r.queue and r.state not in idle)


def stack_status(record: SupervisorRecord | None, facts: StackFacts, vault: Path) -> StackStatus:
    """The snapshot: the supervisor's record (None when `up` never ran here) and the facts."""
    if record is None:
        return StackStatus(
            running=False,
            supervisor_pid=None,
            state="never started here",
            api_url=None,
            vault=str(vault),
            transport="",
            log_dir=None,
            processes=[],
            facts=facts,
        )
    running = record.alive
    processes = process_views(record.processes)
    if not running:  # whatever the file says, nothing of it runs any more
        processes = [
            ProcessView(p.name, "stopped", None, None, p.restarts, None, p.last_exit, p.log, p.note)
            if p.state not in ("disabled", "not configured")
            else p
            for p in processes
        ]
    return StackStatus(
        running=running,
        supervisor_pid=record.pid if running else None,
        state=record.state if running else "stopped",
        api_url=record.api_url,
        vault=record.vault,
        transport=record.transport,
        log_dir=record.log_dir,
        processes=processes,
        facts=facts,
    )


class StackProbe:
    """Reads the facts; keeps its database engine and transport between snapshots."""

    def __init__(
        self,
        settings: Settings,
        vault: Path,
        api_url: str | None,
        active_queues: frozenset[str] | None = None,
    ) -> None:
        self.settings = settings
        self.vault = vault
        self.api_url = api_url
        self.active_queues = active_queues
        self._engine: Engine | None = None
        self._transport: Transport | None = None

    def collect(self) -> StackFacts:
        facts = StackFacts()
        facts.api_answers = self._api_answers()
        self._read_database(facts)
        self._read_bus(facts)
        self._read_git(facts)
        return facts

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _api_answers(self) -> bool:
        if self.api_url is None:
            return False
        try:
            with urllib.request.urlopen(
                f"{self.api_url}/health", timeout=HEALTH_TIMEOUT_SECONDS
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _engine_for_reads(self) -> Engine:
        from weavenn_cli.runtime.db.engine import make_engine, parse_database_url

        if self._engine is None:
            url = parse_database_url(self.settings.database_url)
            # Looking must not create: a SQLite file that is not there stays absent.
            file = url.database if url.get_backend_name() == "sqlite" else None
            if file and file != ":memory:" and not Path(file).expanduser().exists():
                raise WeavennError(f"no database yet at {file}")
            self._engine = make_engine(self.settings.database_url)
        return self._engine

    def _read_database(self, facts: StackFacts) -> None:
        from sqlalchemy import exc, func, select

        from weavenn_cli.runtime.db.engine import reader_engine
        from weavenn_cli.runtime.db.models import Note

        try:
            with reader_engine(self._engine_for_reads()).connect() as connection:
                count = connection.scalar(select(func.count()).select_from(Note))
            facts.notes_indexed = int(count or 0)
        except (exc.SQLAlchemyError, WeavennError) as error:
            facts.problems.append(f"notes: {_first_line(error)}")

    def _read_bus(self, facts: StackFacts) -> None:
        from sqlalchemy import exc

        from weavenn_cli.runtime.bus.transport import open_transport

        try:
            if self._transport is None:
                self._transport = open_transport(self.settings, self._engine_for_reads())
            status = self._transport.status()
        except (exc.SQLAlchemyError, WeavennError) as error:
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            facts.problems.append(f"bus: {_first_line(error)}")
            return
        facts.outbox_pending = status.outbox_pending
        depth = {
            q.queue: (q.ready or 0) + (q.unacknowledged or 0) + (q.retrying or 0)
            for q in status.queues
        }
        active = self.active_queues if self.active_queues is not None else frozenset(depth)
        facts.queued = sum(count for queue, count in depth.items() if queue in active)
        facts.idle_queued = sum(count for queue, count in depth.items() if queue not in active)
        facts.dead_letters = sum(q.dead_letters for q in status.queues)

    def _read_git(self, facts: StackFacts) -> None:
        from weavenn_cli.runtime.git.repository import GitRepository
        from weavenn_cli.runtime.problems import Problem

        if not (self.vault / ".git").exists():
            facts.problems.append(f"git: {self.vault} is not a git repository")
            return
        try:
            entries = GitRepository(self.vault).log(limit=1)
        except Problem as error:
            facts.problems.append(f"git: {_first_line(error)}")
            return
        if entries:
            entry = entries[0]
            facts.last_commit = CommitView(entry.commit, entry.message, entry.date)


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
