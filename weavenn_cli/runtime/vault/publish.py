"""Vault events as the watcher publishes them: built from a file, capped in size."""

from __future__ import annotations

from dataclasses import dataclass

from weavenn_cli.runtime.events import (
    VAULT_FILE_DELETED,
    VaultEventType,
    VaultFileEvent,
    derive_message_id,
)
from weavenn_cli.runtime.vault.parser import ParsedNote, content_hash, parse_note

MAX_TITLE_CHARS = 1000


@dataclass(frozen=True)
class SerialisedEvent:
    """An event and its JSON, serialised once (the size cap needs it, and so does the outbox)."""

    event: VaultFileEvent
    payload: str


def vault_event(
    *,
    vault_id: str,
    kind: VaultEventType,
    path: str,
    sequence: int,
    content: bytes | None = None,
    old_path: str | None = None,
    digest: str | None = None,
    max_text_bytes: int,
    max_event_bytes: int,
) -> VaultFileEvent:
    """The event for one change (see `serialised_vault_event`)."""
    return serialised_vault_event(
        vault_id=vault_id,
        kind=kind,
        path=path,
        sequence=sequence,
        content=content,
        old_path=old_path,
        digest=digest,
        max_text_bytes=max_text_bytes,
        max_event_bytes=max_event_bytes,
    ).event


def serialised_vault_event(
    *,
    vault_id: str,
    kind: VaultEventType,
    path: str,
    sequence: int,
    content: bytes | None = None,
    old_path: str | None = None,
    digest: str | None = None,
    max_text_bytes: int,
    max_event_bytes: int,
) -> SerialisedEvent:
    """The event for one change and its JSON; `content` is the file's bytes (None for a
    delete), `digest` their content hash when the caller has it already.

    Above the caps: the note text is cut at `max_text_bytes` (`note.text_truncated`); if the
    event is still over `max_event_bytes`, it carries the note's title, size and hash with no
    frontmatter, tags, headings, links or text, and says so in `parse_error`.
    """
    if digest is None and content is not None:
        digest = content_hash(content)
    event = VaultFileEvent(
        message_id=derive_message_id(vault_id, kind, path, old_path, digest, sequence),
        event_type=kind,
        file_path=path,
        old_path=old_path,
        vault_id=vault_id,
        content_hash=digest,
        sequence=sequence,
    )
    if kind == VAULT_FILE_DELETED or content is None:
        return SerialisedEvent(event, event.model_dump_json())
    note = parse_note(path, content, max_text_bytes=max_text_bytes)
    _carry(event, note)
    payload = event.model_dump_json()
    size = len(payload.encode())
    if size > max_event_bytes:
        reason = (
            f"note metadata is {size} bytes, over MAX_EVENT_BYTES={max_event_bytes}: "
            "published without frontmatter, tags, headings, links or text"
        )
        _carry(
            event, ParsedNote(title=note.title[:MAX_TITLE_CHARS], size=note.size, errors=[reason])
        )
        payload = event.model_dump_json()
    return SerialisedEvent(event, payload)


_NOT_IN_NOTE = {"frontmatter", "errors"}


def _carry(event: VaultFileEvent, note: ParsedNote) -> None:
    event.frontmatter = note.frontmatter
    event.parse_error = "; ".join(note.errors) or None
    # Every field left is a str, int, bool or list of them (the frontmatter, the one field
    # that needs converting, is carried apart): the Python dump is already JSON, at a third
    # of the cost of mode="json".
    event.note = note.model_dump(exclude=_NOT_IN_NOTE)
