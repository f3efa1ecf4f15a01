"""mcp-sync: keeps the shadow cache of the vault from vault file events.

Everything it needs travels in the event (the parsed note), so it runs without the vault.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import ClassVar

from pydantic import ValidationError
from sqlalchemy.orm import Session

from weavenn_cli.runtime.consumers.base import Delivery, PermanentError
from weavenn_cli.runtime.events import VAULT_FILE_DELETED, VAULT_FILE_MOVED, VaultFileEvent
from weavenn_cli.runtime.vault import cache

log = logging.getLogger(__name__)

BATCH_SIZE = 250


class McpSyncConsumer:
    """Applies vault events in batches (one transaction, a few queries for many notes); the
    runner falls back to one message at a time (`handle`) when a batch fails."""

    name: ClassVar[str] = "mcp-sync"
    queue: ClassVar[str] = "mcp_sync"
    bindings: ClassVar[tuple[str, ...]] = ("vault.file.*",)
    batch_size: int = BATCH_SIZE
    # Short: a lone edit waits this long for company before it is applied.
    batch_idle_seconds: float = 0.02

    def handle_batch(
        self, session: Session, deliveries: Sequence[Delivery]
    ) -> Mapping[str, Exception]:
        failures: dict[str, Exception] = {}
        events: list[VaultFileEvent] = []
        notes: dict[str, cache.NoteInput] = {}
        for delivery in deliveries:
            try:
                event = _vault_event(delivery)
                if event.note is not None and event.event_type != VAULT_FILE_DELETED:
                    notes[event.message_id] = _note(event)
            except PermanentError as error:
                failures[delivery.message_id] = error
                continue
            events.append(event)
        applied = cache.apply_events(session, events, notes)
        skipped = sum(not done for done in applied)
        if skipped:
            log.debug("%d event(s) older than the cache: skipped", skipped)
        return failures

    def handle(self, session: Session, delivery: Delivery) -> None:
        event = _vault_event(delivery)
        if event.note is not None and event.event_type != VAULT_FILE_DELETED:
            _note(event)  # refuse a malformed note before touching the cache
        if not cache.apply_event(session, event):
            log.debug(
                "%s of %s (sequence %d) is older than the cache: skipped",
                event.event_type,
                event.file_path,
                event.sequence,
            )


def _vault_event(delivery: Delivery) -> VaultFileEvent:
    if isinstance(delivery.event, VaultFileEvent):
        event = delivery.event  # validated by the runner already
    else:
        try:
            event = VaultFileEvent.model_validate(dict(delivery.body))
        except ValidationError as error:
            raise PermanentError(f"not a vault file event: {_reason(error)}") from None
    if event.event_type != VAULT_FILE_DELETED and (event.note is None or not event.content_hash):
        raise PermanentError(f"{event.event_type} of {event.file_path} carries no note")
    if event.event_type == VAULT_FILE_MOVED and not event.old_path:
        raise PermanentError(f"vault.file.moved to {event.file_path} has no old_path")
    return event


def _note(event: VaultFileEvent) -> cache.NoteInput:
    try:
        return cache.note_from_event(event)
    except ValidationError as error:
        raise PermanentError(f"note of {event.file_path} is malformed: {_reason(error)}") from None


def _reason(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
