"""Vault events as the watcher publishes them: built from a file, capped in size."""

from __future__ import annotations

from weavenn_cli.runtime.events import (
    VAULT_FILE_DELETED,
    VaultEventType,
    VaultFileEvent,
    derive_message_id,
)
from weavenn_cli.runtime.vault.parser import ParsedNote, content_hash, parse_note

MAX_TITLE_CHARS = 1000


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
    """The event for one change; `content` is the file's bytes (None for a delete), `digest`
    their content hash when the caller has it already.

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
        return event
    note = parse_note(path, content, max_text_bytes=max_text_bytes)
    _carry(event, note)
    size = len(event.model_dump_json().encode())
    if size > max_event_bytes:
        reason = (
            f"note metadata is {size} bytes, over MAX_EVENT_BYTES={max_event_bytes}: "
            "published without frontmatter, tags, headings, links or text"
        )
        _carry(
            event, ParsedNote(title=note.title[:MAX_TITLE_CHARS], size=note.size, errors=[reason])
        )
    return event


def _carry(event: VaultFileEvent, note: ParsedNote) -> None:
    event.frontmatter = note.frontmatter
    event.parse_error = "; ".join(note.errors) or None
    event.note = note.model_dump(mode="json", exclude={"frontmatter", "errors"})
