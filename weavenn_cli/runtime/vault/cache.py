"""The shadow cache: write notes, resolve links as Obsidian does, apply vault events.

Every function takes the caller's session and never commits, so an event's effect commits
with the consumer's inbox entry.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Table,
    TextClause,
    bindparam,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from weavenn_cli.runtime.bus.outbox import dialect_insert
from weavenn_cli.runtime.db.models import (
    Base,
    Note,
    NoteHeading,
    NoteLink,
    NoteTag,
    NoteVersion,
)
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.events import (
    VAULT_FILE_CREATED,
    VAULT_FILE_DELETED,
    VAULT_FILE_MOVED,
    VAULT_FILE_UPDATED,
    VaultFileEvent,
)
from weavenn_cli.runtime.vault.parser import Link, ParsedNote

# Keeps IN (...) lists and executemany batches well under every driver's parameter limit.
CHUNK = 500


# -- link resolution -------------------------------------------------------------------------


# Names and targets repeat across notes and batches (a vault links to the same notes over
# and over): computed once each.
@lru_cache(maxsize=65536)
def name_key(path: str) -> str:
    return path.rpartition("/")[2].lower()


@lru_cache(maxsize=65536)
def _note_form(target: str) -> str:
    """The path a note link asks for, lower case, with the `.md` Obsidian adds."""
    wanted = target.strip().lower()
    return wanted if wanted.endswith(".md") else wanted + ".md"


def target_name(link: Link) -> str | None:
    return name_key(_note_form(link.target)) if link.target_kind == "note" else None


class Resolver:
    """Obsidian's order: the exact vault path, then the linking note's folder, then the
    shortest path whose end matches (fewest folders, then shortest, then alphabetical)."""

    def __init__(self, paths: Iterable[str]) -> None:
        self._by_name: dict[str, dict[str, str]] = defaultdict(dict)
        for path in paths:
            self.add(path)

    def add(self, path: str) -> None:
        self._by_name[name_key(path)][path.lower()] = path

    def resolve(self, source_path: str, link: Link) -> str | None:
        if link.target_kind == "heading":
            return source_path
        if link.target_kind != "note":
            return None
        return self.resolve_note(source_path, link.target)

    def resolve_note(self, source_path: str, target: str) -> str | None:
        """Where a note link with path `target`, written in `source_path`, leads."""
        wanted = _note_form(target)
        candidates = self._by_name.get(wanted.rpartition("/")[2])
        if not candidates:
            return None
        exact = _normal(wanted.lstrip("/"))
        if exact in candidates:
            return candidates[exact]
        folder = _folder(source_path)
        beside = _normal(f"{folder}/{wanted}") if folder else exact
        if beside in candidates:
            return candidates[beside]
        suffix = "/" + exact.lstrip("./")
        matches = [p for key, p in candidates.items() if ("/" + key).endswith(suffix)]
        if not matches:
            return None
        return min(matches, key=lambda p: (p.count("/"), len(p), p))


@lru_cache(maxsize=65536)
def _folder(path: str) -> str:
    return posixpath.dirname(path.lower())


def _normal(path: str) -> str:
    # normpath is slow and rarely needed: only for ./, ../ and doubled slashes.
    return posixpath.normpath(path) if "./" in path or "//" in path else path


# Built once: an expanding IN spares rebuilding (and re-caching) the statement per call.
_PATHS_BY_NAME = select(Note.path).where(Note.name_key.in_(bindparam("names", expanding=True)))
_IDS_BY_PATH = select(Note.path, Note.id).where(Note.path.in_(bindparam("paths", expanding=True)))


# One array parameter joined to the index: a long IN list is compared row by row by
# PostgreSQL when it chooses a sequential scan (a freshly filled table has no statistics).
# Arrays travel as one JSON text (orjson, in C): psycopg adapts a Python list element by
# element, which cost the consumer more than building the rows.
_PATHS_BY_NAME_POSTGRES = text(
    "SELECT notes.path FROM notes "
    "JOIN json_array_elements_text(CAST(:names AS json)) AS wanted(name) "
    "ON notes.name_key = wanted.name"
)


# A short list as an array: PostgreSQL knows its length when it plans (it guesses 100 rows for
# a JSON array), which keeps one note's lookup an index scan on a table without statistics.
FEW = 100
_PATHS_BY_FEW_NAMES_POSTGRES = text(
    "SELECT notes.path FROM notes "
    "JOIN unnest(CAST(:names AS text[])) AS wanted(name) ON notes.name_key = wanted.name"
)


def json_array(values: Iterable[Any]) -> str:
    """An array parameter for PostgreSQL's json_array_elements_text."""
    return orjson.dumps(list(values)).decode()


def _resolver_from_db(session: Session, names: Iterable[str | None]) -> Resolver:
    wanted = sorted({name for name in names if name})
    if session.get_bind().dialect.name == "postgresql":
        if not wanted:
            return Resolver(())
        if len(wanted) <= FEW:
            rows = session.scalars(_PATHS_BY_FEW_NAMES_POSTGRES, {"names": wanted})
        else:
            rows = session.scalars(_PATHS_BY_NAME_POSTGRES, {"names": json_array(wanted)})
        return Resolver(rows.all())
    paths: list[str] = []
    for chunk in chunks(wanted):
        paths += session.scalars(_PATHS_BY_NAME, {"names": list(chunk)}).all()
    return Resolver(paths)


_NOTE_LINKS = (
    select(NoteLink.id, NoteLink.target, NoteLink.target_name, NoteLink.resolved_path, Note.path)
    .join(Note, Note.id == NoteLink.note_id)
    .where(NoteLink.target_kind == "note")
)
# Links that name a file, as a bound parameter so the statement is compiled once.
NAMING = NoteLink.target_name == bindparam("name")
NAMED_AMONG = NoteLink.target_name.in_(bindparam("names", expanding=True))
# The note links naming one of `names` on PostgreSQL: the names as one JSON array (see
# _PATHS_BY_NAME_POSTGRES), joined to the index (as `IN (SELECT ...)` it hashes them and
# scans every link).
LINKS_NAMED_AMONG_POSTGRES = text(
    "SELECT note_links.id, note_links.target, note_links.target_name, "
    "note_links.resolved_path, notes.path "
    "FROM json_array_elements_text(CAST(:names AS json)) AS named(name) "
    "JOIN note_links ON note_links.target_name = named.name "
    "JOIN notes ON notes.id = note_links.note_id "
    "WHERE note_links.target_kind = 'note'"
)


def reresolve(
    session: Session,
    where: ColumnElement[bool] | TextClause,
    resolver: Resolver | None = None,
    params: dict[str, Any] | None = None,
    skip_sources: Collection[str] = (),
) -> int:
    """Resolve again the note links matching `where` (against the notes in the database,
    unless a resolver is given), except those written in `skip_sources` (resolved already
    with this resolver); returns how many changed. `where` may also be a whole query of
    _NOTE_LINKS' columns."""
    query = where if isinstance(where, TextClause) else _NOTE_LINKS.where(where)
    rows = session.execute(query, params or {}).all()
    if resolver is None:
        resolver = _resolver_from_db(session, (row.target_name for row in rows))
    changes = []
    for row in rows:
        if row.path in skip_sources:
            continue
        resolved = resolver.resolve_note(row.path, row.target)
        if resolved != row.resolved_path:
            changes.append({"id": row.id, "resolved_path": resolved})
    _set_resolved_paths(session, changes)
    return len(changes)


# Arrays, not JSON: PostgreSQL plans with their length, so one note's few changes stay an
# index lookup even before the table has statistics (it guesses 100 rows for a JSON array,
# and then scans the whole table).
_SET_RESOLVED_PATHS = text(
    "UPDATE note_links SET resolved_path = changed.path "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:paths AS text[])) AS changed(id, path) "
    "WHERE note_links.id = changed.id"
)


def _set_resolved_paths(session: Session, changes: Sequence[dict[str, Any]]) -> None:
    if session.get_bind().dialect.name == "postgresql" and changes:
        # One statement for all: an executemany would run one UPDATE per link.
        ids = [change["id"] for change in changes]
        paths = [change["resolved_path"] for change in changes]
        session.execute(_SET_RESOLVED_PATHS, {"ids": ids, "paths": paths})
        return
    for chunk in chunks(changes):
        session.execute(update(NoteLink), chunk)


# -- writing notes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteInput:
    path: str
    note: ParsedNote
    content_hash: str
    parse_error: str | None = None


def store_notes(session: Session, inputs: Sequence[NoteInput], resolver: Resolver) -> set[str]:
    """Insert or replace the notes and their tags, headings and links; returns the new paths."""
    if not inputs:
        return set()
    existing = _note_ids(session, [item.path for item in inputs])
    _delete_children(session, list(existing.values()))
    now = utcnow()
    updates = [
        _note_row(item, now) | {"id": existing[item.path]}
        for item in inputs
        if item.path in existing
    ]
    for chunk in chunks(updates):
        session.execute(update(Note), chunk)
    created = [_note_row(item, now) for item in inputs if item.path not in existing]
    ids = dict(existing) | _insert_notes(session, created)
    _insert_children(session, inputs, ids, resolver)
    return {row["path"] for row in created}


def _insert_notes(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert new notes; returns their ids by path."""
    if not rows:
        return {}
    notes = _table(Note)
    if session.get_bind().dialect.name == "postgresql":
        # Ids drawn from the table's sequence up front, so the rows can go in by COPY.
        drawn = session.scalars(_DRAW_NOTE_IDS, {"count": len(rows)}).all()
        for row, note_id in zip(rows, drawn, strict=True):
            row["id"] = note_id
            row["frontmatter"] = json.dumps(row["frontmatter"])
            row["aliases"] = json.dumps(row["aliases"])
        insert_rows(session, notes, rows)
        return {row["path"]: row["id"] for row in rows}
    ids = {}
    for chunk in chunks(rows):
        returned = session.execute(
            insert(notes).returning(notes.c.id, notes.c.path, sort_by_parameter_order=True), chunk
        )
        ids.update({row.path: row.id for row in returned})
    return ids


_DRAW_NOTE_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('notes', 'id')) FROM generate_series(1, :count)"
)


def _note_row(item: NoteInput, now: Any) -> dict[str, Any]:
    note = item.note
    return {
        "path": item.path,
        "name_key": name_key(item.path),
        "title": note.title,
        "node_type": note.node_type,
        "frontmatter": note.frontmatter,
        "aliases": note.aliases,
        "body": note.text,
        "body_truncated": note.text_truncated,
        "size": note.size,
        "content_hash": item.content_hash,
        "parse_error": item.parse_error,
        "indexed_at": now,
    }


def _insert_children(
    session: Session, inputs: Sequence[NoteInput], ids: dict[str, int], resolver: Resolver
) -> None:
    tags: list[dict[str, Any]] = []
    headings: list[dict[str, Any]] = []
    links: list[tuple[Any, ...]] = []
    for item in inputs:
        note_id = ids[item.path]
        seen: set[str] = set()
        for tag in item.note.tags:
            key = tag.lower()[:255]
            if key not in seen:
                seen.add(key)
                tags.append({"note_id": note_id, "tag_key": key, "tag": tag[:255]})
        headings += [
            {"note_id": note_id, "position": i, "level": h.level, "text": h.text, "line": h.line}
            for i, h in enumerate(item.note.headings)
        ]
        links += [
            _link_row(note_id, i, item.path, link, resolver)
            for i, link in enumerate(item.note.links)
        ]
    for model, rows in ((NoteTag, tags), (NoteHeading, headings)):
        insert_rows(session, _table(model), rows)
    _insert_tuples(session, _table(NoteLink), LINK_COLUMNS, links)


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Plain inserts of many rows: COPY on PostgreSQL (one stream instead of one statement
    per row), executemany elsewhere."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        _copy_rows(session, table, rows)
        return
    for chunk in chunks(rows):
        # Core executemany: the ORM would split rows by which values are None.
        session.execute(insert(table), chunk)


def _insert_tuples(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """`insert_rows` for rows built as tuples of `columns` (the many links: no dict each)."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        _copy_tuples(session, table, columns, rows)
        return
    insert_rows(session, table, [dict(zip(columns, row, strict=True)) for row in rows])


def _copy_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(rows[0])
    _copy_tuples(session, table, columns, [tuple(row[c] for c in columns) for row in rows])


def _copy_tuples(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    # The session's own connection: the rows commit or roll back with the transaction.
    driver = session.connection().connection.driver_connection
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


def _table(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]


LINK_COLUMNS = (
    "note_id",
    "position",
    "target",
    "heading",
    "block",
    "alias",
    "embed",
    "kind",
    "target_kind",
    "target_name",
    "resolved_path",
)


def _link_row(
    note_id: int, position: int, source: str, link: Link, resolver: Resolver
) -> tuple[Any, ...]:
    """A row of LINK_COLUMNS."""
    name = target_name(link)
    return (
        note_id,
        position,
        link.target,
        link.heading,
        link.block[:255] if link.block else None,
        link.alias,
        link.embed,
        link.kind,
        link.target_kind,
        name[:255] if name else None,
        resolver.resolve(source, link),
    )


def _note_ids(session: Session, paths: Sequence[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for chunk in chunks(paths):
        rows = session.execute(_IDS_BY_PATH, {"paths": list(chunk)})
        ids.update({path: note_id for path, note_id in rows})
    return ids


def _delete_children(session: Session, note_ids: Sequence[int]) -> None:
    for chunk in chunks(note_ids):
        for model in (NoteTag, NoteHeading, NoteLink):
            session.execute(delete(model).where(model.note_id.in_(chunk)))


def delete_notes(session: Session, paths: Sequence[str]) -> None:
    """Delete notes; links that pointed to them resolve again (maybe to a namesake)."""
    ids = _note_ids(session, paths)
    if not ids:
        return
    _delete_children(session, list(ids.values()))
    for chunk in chunks(list(ids.values())):
        session.execute(delete(Note).where(Note.id.in_(chunk)))
    for chunk in chunks(list(ids)):
        reresolve(session, NoteLink.resolved_path.in_(chunk))


# -- applying events -------------------------------------------------------------------------


def _claim(session: Session, path: str, sequence: int, *, deleted: bool) -> bool:
    """Record `sequence` as the newest change of `path`, unless a newer one is there already.

    One conditional upsert, so two consumers applying events of the same path concurrently
    cannot both win: the database serialises them on the row.
    """
    values = {"path": path, "sequence": sequence, "deleted": deleted, "updated_at": utcnow()}
    return session.execute(_claim_statement(session), values).first() is not None


@cache
def _claim_statement_for(insert_for: Any) -> Any:
    # Built once per dialect: compiled once, not per event.
    statement = insert_for(_table(NoteVersion))
    return statement.on_conflict_do_update(
        index_elements=["path"],
        set_={
            "sequence": statement.excluded.sequence,
            "deleted": statement.excluded.deleted,
            "updated_at": statement.excluded.updated_at,
        },
        where=_table(NoteVersion).c.sequence < statement.excluded.sequence,
    ).returning(_table(NoteVersion).c.path)


def _claim_statement(session: Session) -> Any:
    return _claim_statement_for(dialect_insert(session))


def note_from_event(event: VaultFileEvent) -> NoteInput:
    """The note an event carries (the frontmatter and error travel beside it)."""
    note = ParsedNote.model_validate({**(event.note or {}), "frontmatter": event.frontmatter or {}})
    return NoteInput(event.file_path, note, event.content_hash or "", event.parse_error)


def apply_event(session: Session, event: VaultFileEvent) -> bool:
    """Apply one vault event; False when a newer change of its path(s) was applied already."""
    if event.event_type in (VAULT_FILE_CREATED, VAULT_FILE_UPDATED):
        if not _claim(session, event.file_path, event.sequence, deleted=False):
            return False
        _upsert(session, note_from_event(event))
        return True
    if event.event_type == VAULT_FILE_DELETED:
        if not _claim(session, event.file_path, event.sequence, deleted=True):
            return False
        delete_notes(session, [event.file_path])
        return True
    if event.event_type == VAULT_FILE_MOVED:
        return _apply_move(session, event)
    raise ValueError(f"not a vault file event: {event.event_type}")


def apply_events(
    session: Session,
    events: Sequence[VaultFileEvent],
    notes: Mapping[str, NoteInput] | None = None,
) -> list[bool]:
    """Apply events in order, as `apply_event` would one by one, with far fewer queries:
    a run of creates and updates of distinct paths is claimed, stored and linked at once.
    `notes` may hold the notes already built from the events, by message id.

    Returns, per event, whether it was applied (False: a newer change was there already).
    """
    notes = notes or {}
    applied: list[bool] = []
    run: list[VaultFileEvent] = []
    in_run: set[str] = set()
    for event in events:
        writes = event.event_type in (VAULT_FILE_CREATED, VAULT_FILE_UPDATED)
        if run and (not writes or event.file_path in in_run):
            # A second change of a path in the run, or a delete or move: keep the order.
            applied += _apply_writes(session, run, notes)
            run, in_run = [], set()
        if writes:
            run.append(event)
            in_run.add(event.file_path)
        else:
            applied.append(apply_event(session, event))
    return applied + _apply_writes(session, run, notes)


def _apply_writes(
    session: Session, events: Sequence[VaultFileEvent], notes: Mapping[str, NoteInput]
) -> list[bool]:
    """Creates and updates of distinct paths: one claim, one store, one re-resolution."""
    if len(events) == 1:
        return [apply_event(session, events[0])]
    if not events:
        return []
    won = _claim_many(session, [(event.file_path, event.sequence) for event in events])
    items = [
        notes.get(event.message_id) or note_from_event(event)
        for event in events
        if event.file_path in won
    ]
    if items:
        _upsert_many(session, items)
    return [event.file_path in won for event in events]


def _claim_many(session: Session, claims: Sequence[tuple[str, int]]) -> set[str]:
    """`_claim` for many distinct paths at once; returns the paths whose claim won."""
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # Two array parameters, whatever the number of paths.
        params = {
            "paths": json_array(path for path, _ in claims),
            "sequences": json_array(sequence for _, sequence in claims),
            "now": now,
        }
        return set(session.scalars(_CLAIM_MANY_POSTGRES, params))
    won: set[str] = set()
    for chunk in chunks(claims):
        rows = [
            {"path": path, "sequence": sequence, "deleted": False, "updated_at": now}
            for path, sequence in chunk
        ]
        # One multi-row statement: the conditional upsert returns only the rows it wrote.
        statement = _claim_rows_statement(session, len(rows))
        params = {f"{key}_{i}": value for i, row in enumerate(rows) for key, value in row.items()}
        won.update(session.scalars(statement, params))
    return won


_CLAIM_MANY_POSTGRES = text(
    "INSERT INTO note_versions (path, sequence, deleted, updated_at) "
    "SELECT claim.path, CAST(claim.sequence AS bigint), false, :now "
    "FROM ROWS FROM (json_array_elements_text(CAST(:paths AS json)), "
    "json_array_elements_text(CAST(:sequences AS json))) AS claim(path, sequence) "
    "ON CONFLICT (path) DO UPDATE SET sequence = excluded.sequence, "
    "deleted = excluded.deleted, updated_at = excluded.updated_at "
    "WHERE note_versions.sequence < excluded.sequence "
    "RETURNING path"
)


def _claim_rows_statement(session: Session, count: int) -> Any:
    return _claim_rows_statement_for(dialect_insert(session), count)


@cache
def _claim_rows_statement_for(insert_for: Any, count: int) -> Any:
    columns = ("path", "sequence", "deleted", "updated_at")
    statement = insert_for(_table(NoteVersion)).values(
        [{key: bindparam(f"{key}_{i}") for key in columns} for i in range(count)]
    )
    return statement.on_conflict_do_update(
        index_elements=["path"],
        set_={
            "sequence": statement.excluded.sequence,
            "deleted": statement.excluded.deleted,
            "updated_at": statement.excluded.updated_at,
        },
        where=_table(NoteVersion).c.sequence < statement.excluded.sequence,
    ).returning(_table(NoteVersion).c.path)


def _upsert_many(session: Session, items: Sequence[NoteInput]) -> None:
    """`_upsert` for many notes of distinct paths."""
    names = [target_name(link) for item in items for link in item.note.links]
    names += [name_key(item.path) for item in items]
    resolver = _resolver_from_db(session, names)
    for item in items:
        resolver.add(item.path)
    created = store_notes(session, items, resolver)
    new_names = sorted({name_key(path) for path in created})
    stored = {item.path for item in items}
    if session.get_bind().dialect.name == "postgresql":
        if new_names:
            params: dict[str, Any] = {"names": json_array(new_names)}
            reresolve(session, LINKS_NAMED_AMONG_POSTGRES, resolver, params, skip_sources=stored)
    else:
        for chunk in chunks(new_names):
            params = {"names": list(chunk)}
            reresolve(session, NAMED_AMONG, resolver, params, skip_sources=stored)
    _statistics.grew(session, len(created))


class _PlannerStatistics:
    """Refreshes PostgreSQL's statistics of the cache's tables while they fill up quickly.

    Without statistics (a fresh database, an initial index) the planner takes a growing table
    for a few hundred rows and answers each batch's lookups (the inbox check, links by id, by
    name) with sequential scans and hash joins over the whole table: a cost that grows with
    every batch. Autovacuum analyzes a minute later at best, after the initial index is over.
    So each time the notes this process stored reach the table's size at the last ANALYZE (it
    doubled, or a first thousand notes), the tables the batches look up in are analyzed, in
    the batch's transaction: a few times in all, whatever the vault's size.
    """

    FIRST = 1000
    STATEMENT = text(
        "ANALYZE notes (id, path, name_key), note_links (id, note_id, target_kind, target_name, "
        "resolved_path), note_versions, inbox"
    )
    _SIZE = text("SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'notes'::regclass")

    def __init__(self) -> None:
        # Per database: notes stored since the last ANALYZE, and the table's size then.
        self._stored: dict[str, int] = {}
        self._size: dict[str, float] = {}

    def grew(self, session: Session, created: int) -> None:
        bind = session.get_bind()
        if bind.dialect.name != "postgresql" or not created:
            return
        database = bind.engine.url.render_as_string()
        if database not in self._size:
            self._size[database] = float(session.scalar(self._SIZE) or 0.0)
        self._stored[database] = self._stored.get(database, 0) + created
        if self._stored[database] >= max(self.FIRST, self._size[database]):
            session.execute(self.STATEMENT)
            self._size[database] = float(session.scalar(self._SIZE) or 0.0)
            self._stored[database] = 0


_statistics = _PlannerStatistics()


def _upsert(session: Session, item: NoteInput) -> None:
    # The candidates for the note's own links, and for links elsewhere that name this note.
    names = [target_name(link) for link in item.note.links] + [name_key(item.path)]
    resolver = _resolver_from_db(session, names)
    resolver.add(item.path)
    if item.path in store_notes(session, [item], resolver):
        # A new note may be what other notes' links were looking for.
        reresolve(session, NAMING, resolver, {"name": name_key(item.path)})


def _apply_move(session: Session, event: VaultFileEvent) -> bool:
    old_path = event.old_path or ""
    new_won = _claim(session, event.file_path, event.sequence, deleted=False)
    old_won = bool(old_path) and _claim(session, old_path, event.sequence, deleted=True)
    moving = _note_ids(session, [old_path]).get(old_path) if new_won and old_won else None
    if moving is not None:
        # Keep the note's row: links that resolved to it follow it to its new path.
        delete_notes(session, [event.file_path])
        session.execute(
            update(Note)
            .where(Note.id == moving)
            .values(path=event.file_path, name_key=name_key(event.file_path))
        )
        session.execute(
            update(NoteLink)
            .where(NoteLink.resolved_path == old_path)
            .values(resolved_path=event.file_path)
        )
    elif old_won:
        delete_notes(session, [old_path])
    if new_won:
        _upsert(session, note_from_event(event))
        if moving is not None:
            reresolve(session, NAMING, params={"name": name_key(event.file_path)})
    return new_won or old_won


def chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
