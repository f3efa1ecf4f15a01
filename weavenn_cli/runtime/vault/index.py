"""Indexing a whole vault into the shadow cache directly, without the bus."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import case, select, true
from sqlalchemy.orm import Session, sessionmaker

from weavenn_cli.runtime.bus.outbox import dialect_insert
from weavenn_cli.runtime.db.engine import session_scope
from weavenn_cli.runtime.db.models import Note, NoteVersion, PublishedFile
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.vault.cache import (
    NoteInput,
    Resolver,
    chunks,
    delete_notes,
    reresolve,
    store_notes,
)
from weavenn_cli.runtime.vault.files import PathFilter, read_note, scan_vault
from weavenn_cli.runtime.vault.parser import content_hash, parse_note

log = logging.getLogger(__name__)


@dataclass
class IndexSummary:
    scanned: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    relinked: int = 0
    parse_errors: int = 0
    unreadable: list[str] = field(default_factory=list)


Progress = Callable[[int, int], None]


def index_vault(
    factory: sessionmaker[Session],
    root: Path,
    *,
    vault_id: str,
    path_filter: PathFilter,
    max_text_bytes: int | None,
    progress: Progress | None = None,
    batch_size: int = 200,
) -> IndexSummary:
    """Bring the cache in line with the files: new and changed notes written, missing notes
    deleted, every link resolved again. Batches commit one by one, so an interrupted run
    loses nothing and the next run carries on from what is there."""
    files = scan_vault(root, path_filter)
    summary = IndexSummary(scanned=len(files))
    resolver = Resolver(files)
    with factory() as session:
        rows = session.execute(select(Note.path, Note.content_hash))
        known = {path: digest for path, digest in rows}
        versions = _known_sequences(session, vault_id)
    for start in range(0, len(files), batch_size):
        batch = files[start : start + batch_size]
        with session_scope(factory) as session:
            _index_batch(session, root, batch, known, versions, resolver, max_text_bytes, summary)
        if progress:
            progress(start + len(batch), len(files))
    gone = sorted(set(known) - set(files))
    with session_scope(factory) as session:
        for chunk in chunks(gone):
            delete_notes(session, chunk)
            _set_versions(session, [(path, versions.get(path, 0), True) for path in chunk])
        summary.deleted = len(gone)
        if summary.unchanged or summary.unreadable:
            # Notes written by this run were resolved against the whole vault already.
            summary.relinked = reresolve(session, true(), resolver)
    return summary


def _index_batch(
    session: Session,
    root: Path,
    batch: Sequence[str],
    known: dict[str, str],
    versions: dict[str, int],
    resolver: Resolver,
    max_text_bytes: int | None,
    summary: IndexSummary,
) -> None:
    inputs = []
    for path in batch:
        try:
            content = read_note(root, path)
        except OSError as error:
            log.warning("cannot read %s: %s", path, error)
            content = None
        if content is None:
            summary.unreadable.append(path)
            continue
        digest = content_hash(content)
        if known.get(path) == digest:
            summary.unchanged += 1
            continue
        note = parse_note(path, content, max_text_bytes=max_text_bytes)
        summary.parse_errors += bool(note.errors)
        inputs.append(NoteInput(path, note, digest, "; ".join(note.errors) or None))
        if path in known:
            summary.updated += 1
        else:
            summary.created += 1
    store_notes(session, inputs, resolver)
    _set_versions(session, [(item.path, versions.get(item.path, 0), False) for item in inputs])


def _known_sequences(session: Session, vault_id: str) -> dict[str, int]:
    """Per path, the newest sequence the cache or the watcher has seen.

    The index writes what the files say now; giving it that sequence lets a newer event
    still apply while an older one, still queued, is skipped.
    """
    rows = session.execute(select(NoteVersion.path, NoteVersion.sequence))
    sequences = {path: sequence for path, sequence in rows}
    published = session.execute(
        select(PublishedFile.path, PublishedFile.sequence).where(PublishedFile.vault_id == vault_id)
    )
    for path, sequence in published:
        sequences[path] = max(sequence, sequences.get(path, 0))
    return sequences


def _set_versions(session: Session, rows: Sequence[tuple[str, int, bool]]) -> None:
    for chunk in chunks(rows):
        values = [
            {"path": path, "sequence": sequence, "deleted": deleted, "updated_at": utcnow()}
            for path, sequence, deleted in chunk
        ]
        statement = dialect_insert(session)(NoteVersion).values(values)
        newest = case(
            (statement.excluded.sequence > NoteVersion.sequence, statement.excluded.sequence),
            else_=NoteVersion.sequence,
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["path"],
                set_={
                    "sequence": newest,
                    "deleted": statement.excluded.deleted,
                    "updated_at": statement.excluded.updated_at,
                },
            )
        )
