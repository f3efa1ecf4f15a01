"""Event models and routing keys: the contract between publishers and consumers.

Messages are JSON objects; every event carries a unique `message_id` that consumers record in
their inbox, so a redelivered message changes nothing. Consumers ignore fields they do not
know, so publishers may add fields without breaking older consumers.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from weavenn_cli.runtime.db.types import utcnow

VAULT_FILE_CREATED = "vault.file.created"
VAULT_FILE_UPDATED = "vault.file.updated"
VAULT_FILE_DELETED = "vault.file.deleted"
VAULT_FILE_MOVED = "vault.file.moved"
VAULT_FILE_EVENTS = (VAULT_FILE_CREATED, VAULT_FILE_UPDATED, VAULT_FILE_DELETED, VAULT_FILE_MOVED)

# Published by the agent rules (agent-tasks) about what they did to a note.
VAULT_METADATA_TAGS_UPDATED = "vault.metadata.tags_updated"
VAULT_METADATA_LINKS_UPDATED = "vault.metadata.links_updated"

TASK_CREATED = "task.created"
TASK_UPDATED = "task.updated"
TASK_COMPLETED = "task.completed"
TASK_DELETED = "task.deleted"
TASK_EVENTS = (TASK_CREATED, TASK_UPDATED, TASK_COMPLETED, TASK_DELETED)

VaultEventType = Literal[
    "vault.file.created", "vault.file.updated", "vault.file.deleted", "vault.file.moved"
]
TaskEventType = Literal["task.created", "task.updated", "task.completed", "task.deleted"]
MetadataEventType = Literal["vault.metadata.tags_updated", "vault.metadata.links_updated"]


class Event(BaseModel):
    """Fields every event has. The routing key is the event type."""

    model_config = ConfigDict(extra="ignore")

    message_id: str
    event_type: str
    timestamp: datetime = Field(default_factory=utcnow)
    user_id: str | None = None

    @property
    def routing_key(self) -> str:
        return self.event_type


class VaultFileEvent(Event):
    """A change to one note of the vault (the design's VaultFileEvent, extended).

    It carries the parsed note metadata so a consumer of the shadow cache needs no access to
    the vault files. `sequence` grows with every change the watcher publishes for a path, so a
    consumer can ignore an event older than what it already applied (retries reorder events).
    """

    event_type: VaultEventType
    file_path: str
    vault_id: str
    frontmatter: dict[str, Any] | None = None
    content_hash: str | None = None
    old_path: str | None = None
    sequence: int = 0
    note: dict[str, Any] | None = None
    parse_error: str | None = None


class VaultMetadataEvent(Event):
    """What the agent rules changed or found in one note (the version `content_hash`).

    `vault.metadata.tags_updated`: `tags_added` were written to the note's frontmatter (and
    `summary` when the Claude enrichment wrote one). `vault.metadata.links_updated`:
    `links_applied` became wikilinks, and/or the note's link suggestions are now
    `suggestions`.
    """

    event_type: MetadataEventType
    file_path: str
    vault_id: str
    content_hash: str | None = None
    source_message_id: str | None = None
    rules: list[str] = Field(default_factory=list)
    tags_added: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    summary: str | None = None
    links_applied: list[dict[str, str]] = Field(default_factory=list)
    suggestions: list[dict[str, Any]] = Field(default_factory=list)


class TaskEvent(Event):
    """A change to a task, written to the outbox in the transaction that made it."""

    event_type: TaskEventType
    task_id: str
    project_id: str
    task: dict[str, Any] | None = None


def derive_message_id(*parts: object) -> str:
    """A stable id from the parts that identify one change: publishing it again is a duplicate.

    Include something that changes with every real change (a sequence number), or a change
    that returns to an earlier state (A -> B -> A) would be dropped as a duplicate.
    """
    digest = hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode())
    return digest.hexdigest()[:32]


def model_for(routing_key: str) -> type[Event]:
    """The event model a message with `routing_key` must match."""
    if routing_key.startswith("vault.file."):
        return VaultFileEvent
    if routing_key.startswith("vault.metadata."):
        return VaultMetadataEvent
    if routing_key.startswith("task."):
        return TaskEvent
    return Event
