"""mcp-sync: keeps the shadow cache of the vault from vault file events.

Everything it needs travels in the event (the parsed note), so it runs without the vault.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from pydantic import ValidationError
from sqlalchemy.orm import Session

from weavenn_cli.runtime.consumers.base import Delivery, PermanentError
from weavenn_cli.runtime.events import VAULT_FILE_DELETED, VAULT_FILE_MOVED, VaultFileEvent
from weavenn_cli.runtime.vault import cache

log = logging.getLogger(__name__)


class McpSyncConsumer:
    name: ClassVar[str] = "mcp-sync"
    queue: ClassVar[str] = "mcp_sync"
    bindings: ClassVar[tuple[str, ...]] = ("vault.file.*",)

    def handle(self, session: Session, delivery: Delivery) -> None:
        event = _vault_event(delivery)
        try:
            applied = cache.apply_event(session, event)
        except ValidationError as error:
            raise PermanentError(
                f"note of {event.file_path} is malformed: {_reason(error)}"
            ) from None
        if not applied:
            log.debug(
                "%s of %s (sequence %d) is older than the cache: skipped",
                event.event_type,
                event.file_path,
                event.sequence,
            )


def _vault_event(delivery: Delivery) -> VaultFileEvent:
    try:
        event = VaultFileEvent.model_validate(dict(delivery.body))
    except ValidationError as error:
        raise PermanentError(f"not a vault file event: {_reason(error)}") from None
    if event.event_type != VAULT_FILE_DELETED and (event.note is None or not event.content_hash):
        raise PermanentError(f"{event.event_type} of {event.file_path} carries no note")
    if event.event_type == VAULT_FILE_MOVED and not event.old_path:
        raise PermanentError(f"vault.file.moved to {event.file_path} has no old_path")
    return event


def _reason(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
