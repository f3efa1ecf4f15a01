"""The vault watcher: file changes become vault events in the outbox.

Each event is written to the outbox in the transaction that records it in `published_files`
(path -> content hash, sequence), so what was published and what the watcher believes was
published never disagree. At start the watcher compares the vault with that table and
publishes what changed while it was down; then it follows changes as they happen.

Changes are debounced per path. A deleted path and a created path with the same content in
one flush are a move. A folder that appears is scanned (files written into it before the
operating system watched it are not missed); a folder that disappears takes its notes along.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exc, func, select
from sqlalchemy.orm import Session, sessionmaker
from watchfiles import Change, watch

from weavenn_cli.runtime.bus.outbox import dialect_insert, enqueue_many, execute_binary
from weavenn_cli.runtime.db.engine import session_scope
from weavenn_cli.runtime.db.models import PublishedFile
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.events import VaultEventType
from weavenn_cli.runtime.vault.files import (
    PathFilter,
    read_note,
    relative_to_vault,
    scan_folder,
    scan_vault,
)
from weavenn_cli.runtime.vault.parser import content_hash
from weavenn_cli.runtime.vault.publish import SerialisedEvent, serialised_vault_event

log = logging.getLogger(__name__)

EVENTS_PER_TRANSACTION = 200
# A file written without pause is still published this often.
MAX_WAIT_FACTOR = 10
MIN_MAX_WAIT_SECONDS = 5.0
RETRY_SECONDS = 2.0
QUIET_ABOVE = 20


@dataclass(frozen=True)
class WatchConfig:
    root: Path
    vault_id: str
    path_filter: PathFilter
    debounce_seconds: float = 0.5
    max_text_bytes: int = 262_144
    max_event_bytes: int = 1_048_576


@dataclass
class _Change:
    kind: VaultEventType
    path: str
    content: bytes | None = None
    digest: str | None = None
    old_path: str | None = None


@dataclass
class _Pending:
    first_seen: float
    last_seen: float


OnCommit = Callable[[int], None]


class VaultWatcher:
    """Publishes vault changes to the outbox; `on_commit(n)` runs after each commit of n
    events (an outbox relay running beside the watcher can wake up on it)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        config: WatchConfig,
        on_commit: OnCommit | None = None,
    ) -> None:
        self.factory = factory
        self.config = config
        self.on_commit = on_commit
        self.published = 0  # events published since this watcher started
        # Set once changes are being watched (and the initial scan, if any, is published).
        self.ready = threading.Event()
        self._pending: dict[str, _Pending] = {}
        self._published, self._sequence = self._load_state()

    # -- state -----------------------------------------------------------------------------

    def _load_state(self) -> tuple[dict[str, str | None], int]:
        with self.factory() as session:
            rows = session.execute(
                select(PublishedFile.path, PublishedFile.content_hash).where(
                    PublishedFile.vault_id == self.config.vault_id
                )
            )
            published = {path: digest for path, digest in rows}
            sequence = session.scalar(
                select(func.max(PublishedFile.sequence)).where(
                    PublishedFile.vault_id == self.config.vault_id
                )
            )
        return published, int(sequence or 0)

    def _live_paths(self) -> set[str]:
        return {path for path, digest in self._published.items() if digest is not None}

    # -- one-off work ----------------------------------------------------------------------

    def reconcile(self) -> int:
        """Publish what changed since the last publish (the watcher was down); returns events."""
        files = scan_vault(self.config.root, self.config.path_filter)
        return self.publish(set(files) | self._live_paths())

    def publish(self, paths: Iterable[str]) -> int:
        """Compare `paths` on disk with what was published, and publish the differences.

        Many changes (the initial scan) are parsed on this thread while a writer thread
        commits the previous transaction: the database round trips hide behind the parsing.
        Transactions still commit one after the other, in order; the first that fails stops
        the publishing and raises here.
        """
        changes = self._changes(sorted(set(paths)))
        batches = [
            changes[start : start + EVENTS_PER_TRANSACTION]
            for start in range(0, len(changes), EVENTS_PER_TRANSACTION)
        ]
        if len(batches) <= 1:
            for batch in batches:
                self._write(self._events(batch))
            return len(changes)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="weavenn-outbox") as writer:
            written: Future[None] | None = None
            for batch in batches:
                events = self._events(batch)
                if written is not None:
                    written.result()
                written = writer.submit(self._write, events)
            if written is not None:
                written.result()
        return len(changes)

    # -- the watch loop --------------------------------------------------------------------

    def run(self, stop: threading.Event, *, initial_scan: bool = True) -> None:
        """Watch until `stop` is set; pending changes are published before returning."""
        debounce = self.config.debounce_seconds
        tick_ms = int(min(100.0, max(20.0, debounce * 1000 / 4)))
        changes = watch(
            self.config.root,
            watch_filter=None,
            debounce=tick_ms,
            step=min(20, tick_ms),
            rust_timeout=tick_ms,
            yield_on_timeout=True,
            stop_event=stop,
            raise_interrupt=False,
        )
        # The first batch (empty, after one tick) means the OS watch is in place: scan after
        # it, so nothing written during the scan is missed.
        first = next(changes, set())
        if initial_scan:
            published = self.reconcile()
            log.info("initial scan: %d change(s) published", published)
        self.ready.set()
        self._note_changes(first)
        for batch in changes:
            self._note_changes(batch)
            self._flush(force=False)
            if stop.is_set():
                break
        self._flush(force=True)

    def _note_changes(self, batch: Iterable[tuple[Change, str]]) -> None:
        now = time.monotonic()
        for change, absolute in batch:
            for relative in self._affected(Path(absolute), added=change == Change.added):
                pending = self._pending.get(relative)
                if pending is None:
                    self._pending[relative] = _Pending(now, now)
                else:
                    pending.last_seen = now

    def _affected(self, absolute: Path, *, added: bool) -> list[str]:
        """The note paths a change of `absolute` may concern (a folder concerns its notes)."""
        relative = relative_to_vault(self.config.root, absolute)
        if relative is None or relative == "." or self.config.path_filter.ignores(relative):
            return []
        affected = []
        if absolute.is_dir():
            if added:  # a folder that appeared, maybe with notes already in it
                affected += scan_folder(self.config.root, absolute, self.config.path_filter)
        elif self.config.path_filter.accepts(relative):
            affected.append(relative)
        if relative not in self._published and not absolute.exists():
            # A folder removed or renamed: inotify reports the folder, not its notes.
            prefix = relative + "/"
            affected += [path for path in self._live_paths() if path.startswith(prefix)]
        return affected

    def _flush(self, *, force: bool) -> None:
        due = self._due_paths(force)
        if not due:
            return
        for path in due:
            del self._pending[path]
        try:
            self.publish(due)
        except exc.DBAPIError as error:
            # The database is unreachable or busy: keep the paths and try again later.
            log.warning("cannot publish %d change(s), retrying: %s", len(due), _first_line(error))
            retry_at = time.monotonic() + RETRY_SECONDS
            for path in due:
                self._pending.setdefault(path, _Pending(retry_at, retry_at))

    def _due_paths(self, force: bool) -> list[str]:
        if force:
            return list(self._pending)
        now = time.monotonic()
        debounce = self.config.debounce_seconds
        max_wait = max(MIN_MAX_WAIT_SECONDS, debounce * MAX_WAIT_FACTOR)

        def is_due(item: _Pending) -> bool:
            return now - item.last_seen >= debounce or now - item.first_seen >= max_wait

        due = [path for path, item in self._pending.items() if is_due(item)]
        settling = [path for path, item in self._pending.items() if not is_due(item)]
        if not settling:
            return due
        # The two halves of a move must flush together: while a new note is still settling,
        # hold back notes that disappeared, and the other way round.
        new_settling = any(self._is_new(path) for path in settling)
        gone_settling = any(self._is_gone(path) for path in settling)
        return [
            path
            for path in due
            if not (new_settling and self._is_gone(path))
            and not (gone_settling and self._is_new(path))
        ]

    def _is_new(self, path: str) -> bool:
        return self._published.get(path) is None and (self.config.root / path).is_file()

    def _is_gone(self, path: str) -> bool:
        return self._published.get(path) is not None and not (self.config.root / path).is_file()

    # -- from disk to events ---------------------------------------------------------------

    def _changes(self, paths: Sequence[str]) -> list[_Change]:
        created: list[_Change] = []
        updated: list[_Change] = []
        gone: list[str] = []
        for path in paths:
            before = self._published.get(path)
            content = self._read(path)
            if content is None:
                if before is not None:
                    gone.append(path)
                continue
            digest = content_hash(content)
            if before is None:
                created.append(_Change("vault.file.created", path, content, digest))
            elif before != digest:
                updated.append(_Change("vault.file.updated", path, content, digest))
        return _pair_moves(created, gone, self._published) + updated

    def _read(self, path: str) -> bytes | None:
        if not self.config.path_filter.accepts(path):
            return None
        try:
            return read_note(self.config.root, path)
        except OSError as error:
            log.warning("cannot read %s: %s", path, error)
            return None

    def _events(self, changes: Sequence[_Change]) -> list[tuple[_Change, SerialisedEvent]]:
        events: list[tuple[_Change, SerialisedEvent]] = []
        for change in changes:
            self._sequence += 1
            events.append((change, self._event(change, self._sequence)))
        return events

    def _write(self, events: Sequence[tuple[_Change, SerialisedEvent]]) -> None:
        """One transaction: the events into the outbox, their paths into published_files."""
        records = []
        for change, serialised in events:
            records.append((change.path, change.digest, serialised.event.sequence))
            if change.old_path:
                records.append((change.old_path, None, serialised.event.sequence))
        with session_scope(self.factory) as session:
            enqueue_many(
                session,
                [serialised.event for _change, serialised in events],
                payloads=[serialised.payload for _change, serialised in events],
            )
            _record(session, self.config.vault_id, records)
        # One line per event for live changes; a large scan logs them at debug level.
        level = logging.INFO if len(events) <= QUIET_ABOVE else logging.DEBUG
        for change, serialised in events:
            self._published[change.path] = change.digest
            if change.old_path:
                self._published[change.old_path] = None
            self.published += 1
            log.log(level, "%s %s", serialised.event.event_type, _describe(change))
        if self.on_commit is not None:
            self.on_commit(len(events))

    def _event(self, change: _Change, sequence: int) -> SerialisedEvent:
        return serialised_vault_event(
            vault_id=self.config.vault_id,
            kind=change.kind,
            path=change.path,
            old_path=change.old_path,
            sequence=sequence,
            content=change.content,
            digest=change.digest,
            max_text_bytes=self.config.max_text_bytes,
            max_event_bytes=self.config.max_event_bytes,
        )


def _pair_moves(
    created: list[_Change], gone: list[str], published: dict[str, str | None]
) -> list[_Change]:
    """A note that disappeared and one that appeared with the same content: one move."""
    gone_by_hash: dict[str | None, list[str]] = {}
    for path in gone:
        gone_by_hash.setdefault(published[path], []).append(path)
    changes = []
    for change in created:
        sources = gone_by_hash.get(change.digest)
        if sources:
            change.kind, change.old_path = "vault.file.moved", sources.pop(0)
        changes.append(change)
    changes += [
        _Change("vault.file.deleted", path) for paths in gone_by_hash.values() for path in paths
    ]
    return changes


def _record(
    session: Session, vault_id: str, records: Sequence[tuple[str, str | None, int]]
) -> None:
    """Remember what was published: per path, its content hash (None: gone) and sequence."""
    latest = {path: (digest, sequence) for path, digest, sequence in records}  # one per path
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        execute_binary(
            session,
            _RECORD_POSTGRES,
            {
                "vault_id": vault_id,
                "paths": list(latest),
                "hashes": [digest for digest, _sequence in latest.values()],
                "sequences": [sequence for _digest, sequence in latest.values()],
                "now": now,
            },
        )
        return
    table = PublishedFile.__table__
    statement = dialect_insert(session)(table)
    upsert = statement.on_conflict_do_update(
        index_elements=["vault_id", "path"],
        set_={
            "content_hash": statement.excluded.content_hash,
            "sequence": statement.excluded.sequence,
            "updated_at": statement.excluded.updated_at,
        },
    )
    rows = [
        {
            "vault_id": vault_id,
            "path": path,
            "content_hash": digest,
            "sequence": sequence,
            "updated_at": now,
        }
        for path, (digest, sequence) in latest.items()
    ]
    session.execute(upsert, rows)


# Array parameters: one statement per transaction instead of one per path.
_RECORD_POSTGRES = (
    "INSERT INTO published_files (vault_id, path, content_hash, sequence, updated_at) "
    "SELECT %(vault_id)s, path, content_hash, sequence, %(now)s FROM unnest("
    "CAST(%(paths)b AS text[]), CAST(%(hashes)b AS text[]), CAST(%(sequences)s AS bigint[])"
    ") AS published(path, content_hash, sequence) "
    "ON CONFLICT (vault_id, path) DO UPDATE SET content_hash = excluded.content_hash, "
    "sequence = excluded.sequence, updated_at = excluded.updated_at"
)


def _describe(change: _Change) -> str:
    return f"{change.old_path} -> {change.path}" if change.old_path else change.path


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
