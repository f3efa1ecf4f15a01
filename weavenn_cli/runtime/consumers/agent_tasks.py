"""agent-tasks: rules that improve notes (auto-tag, auto-link, optional Claude summary).

For a created or updated note it reads the file (the event says which version; a file that
changed since is skipped, its own event follows), applies the rules, records the link
suggestions, and writes the note back through the file layer when the rules changed it.

No loop: every version the rules write is recorded (path, content hash) in
`agent_writebacks` in the transaction of the message; when that version comes back as a
vault event, the consumer sees its own write and does nothing. The rules are idempotent
besides (a tag present is not added again, a mention inside a link is not a mention), so
even a write-back whose record was lost changes nothing the second time.

`task.*` events reach the same queue (the design binds them) and are acknowledged without
effect: no rule applies to tasks yet.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError
from sqlalchemy.orm import Session

from weavenn_cli.runtime.agent import store
from weavenn_cli.runtime.agent.engine import Agent, Result, Summarizer
from weavenn_cli.runtime.agent.matching import CandidateIndex
from weavenn_cli.runtime.agent.rules import load_rules, rules_path
from weavenn_cli.runtime.bus.outbox import enqueue
from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.consumers.base import Delivery, PermanentError
from weavenn_cli.runtime.errors import ConfigError
from weavenn_cli.runtime.events import (
    VAULT_FILE_CREATED,
    VAULT_FILE_UPDATED,
    VAULT_METADATA_LINKS_UPDATED,
    VAULT_METADATA_TAGS_UPDATED,
    VaultFileEvent,
    VaultMetadataEvent,
    derive_message_id,
)
from weavenn_cli.runtime.files.errors import InvalidPath
from weavenn_cli.runtime.files.local import VaultFileService
from weavenn_cli.runtime.vault.cache import Resolver
from weavenn_cli.runtime.vault.parser import content_hash

log = logging.getLogger(__name__)


class AgentTasksConsumer:
    name: ClassVar[str] = "agent-tasks"
    queue: ClassVar[str] = "agent_tasks"
    # The note is written outside the database: commit each message before the next, so
    # git-auto-commit finds the write-back record by the time the file's event reaches it.
    commit_each: ClassVar[bool] = True
    bindings: ClassVar[tuple[str, ...]] = ("vault.file.created", "vault.file.updated", "task.*")

    def __init__(self, agent: Agent, vault: Path, *, vault_id: str = "weave-nn") -> None:
        self.agent = agent
        self.vault_id = vault_id
        self._files = VaultFileService(vault)
        self._names_key: tuple[int, str] | None = None
        self._names = CandidateIndex()
        self._resolver = Resolver(())

    @classmethod
    def from_settings(cls, settings: Settings) -> AgentTasksConsumer:
        """Refuses to start on a malformed rules file or a missing vault (one line each)."""
        path = rules_path(settings)
        rules = load_rules(path)
        if not settings.vault_path.is_dir():
            raise ConfigError(
                f"vault folder {settings.vault_path} not found: set VAULT_PATH "
                "(agent-tasks reads and writes the notes)"
            )
        summarizer: Summarizer | None = None
        if settings.agent_summary:
            if settings.claude_api_key is None:
                raise ConfigError("AGENT_SUMMARY=true needs CLAUDE_API_KEY: set it or turn it off")
            from weavenn_cli.runtime.agent.claude import ClaudeSummarizer

            summarizer = ClaudeSummarizer.from_settings(settings)
        max_tags = rules.max_tags if settings.agent_max_tags is None else settings.agent_max_tags
        log.info(
            "agent rules from %s: %d folder and %d keyword rules, at most %d tags, links %s%s",
            path,
            len(rules.folders),
            len(rules.keywords),
            max_tags,
            "applied" if settings.auto_link_apply else "suggested",
            ", summaries from Claude" if summarizer else "",
        )
        agent = Agent(rules, max_tags, settings.auto_link_apply, summarizer)
        return cls(agent, settings.vault_path, vault_id=settings.vault_id)

    def handle(self, session: Session, delivery: Delivery) -> None:
        if delivery.routing_key.startswith("task."):
            log.debug("%s: no rule applies to tasks", delivery.routing_key)
            return
        event = _vault_event(delivery)
        if event.event_type not in (VAULT_FILE_CREATED, VAULT_FILE_UPDATED):
            return
        path, version = event.file_path, str(event.content_hash)
        if store.is_own_version(session, path, version):
            log.debug("%s: this version is the rules' own write-back", path)
            return
        try:
            raw = self._files.read_bytes(path)
        except InvalidPath as error:
            raise PermanentError(f"{path}: {error}") from None
        if raw is None or content_hash(raw) != version:
            log.debug("%s changed or went away since this event: its own event follows", path)
            return
        names, resolver = self._vault_names(session)
        result = self.agent.run(path, raw, names, resolver)
        self._record(session, event, result)

    # -- effects -------------------------------------------------------------------------

    def _record(self, session: Session, event: VaultFileEvent, result: Result) -> None:
        """Suggestions, write-back record and events in a savepoint; the file last, so a
        note saved meanwhile (not overwritten) takes the records back with it."""
        path, version = event.file_path, str(event.content_hash)
        savepoint = session.begin_nested()
        try:
            suggestions_changed = store.replace_suggestions(session, path, result.suggestions)
            written = content_hash(result.content) if result.content is not None else version
            if result.content is not None:
                store.record_writeback(session, path, written, result.rules)
            self._publish(session, event, result, written, suggestions_changed)
            session.flush()
            if result.content is not None and not self._files.replace_bytes_if_unchanged(
                path, result.content, version
            ):
                savepoint.rollback()
                log.info("%s was saved meanwhile: not written back; its own event follows", path)
                return
        except BaseException:
            savepoint.rollback()
            raise
        savepoint.commit()
        if result.content is not None:
            log.info(
                "%s written back (%s)%s%s",
                path,
                ", ".join(result.rules),
                f"; tags added: {', '.join(result.tags_added)}" if result.tags_added else "",
                f"; {len(result.links_applied)} links" if result.links_applied else "",
            )

    def _publish(
        self,
        session: Session,
        event: VaultFileEvent,
        result: Result,
        written: str,
        suggestions_changed: bool,
    ) -> None:
        common: dict[str, Any] = {
            "file_path": event.file_path,
            "vault_id": event.vault_id,
            "content_hash": written,
            "source_message_id": event.message_id,
            "rules": result.rules,
        }
        if result.tags_added or result.summary:
            enqueue(
                session,
                VaultMetadataEvent(
                    message_id=derive_message_id(self.name, event.message_id, "tags"),
                    event_type=VAULT_METADATA_TAGS_UPDATED,
                    tags_added=result.tags_added,
                    tags=result.tags,
                    summary=result.summary,
                    **common,
                ),
            )
        if result.links_applied or suggestions_changed:
            enqueue(
                session,
                VaultMetadataEvent(
                    message_id=derive_message_id(self.name, event.message_id, "links"),
                    event_type=VAULT_METADATA_LINKS_UPDATED,
                    links_applied=result.links_applied,
                    suggestions=result.suggestions,
                    **common,
                ),
            )

    def _vault_names(self, session: Session) -> tuple[CandidateIndex, Resolver]:
        """Titles and aliases of the cached notes, rebuilt only when the cache changed."""
        key = store.cache_fingerprint(session)
        if key != self._names_key:
            notes = store.note_names(session)
            self._names = CandidateIndex.build(notes, self.agent.rules.links.min_length)
            self._resolver = Resolver(path for path, _, _ in notes)
            self._names_key = key
        return self._names, self._resolver


def _vault_event(delivery: Delivery) -> VaultFileEvent:
    try:
        event = VaultFileEvent.model_validate(dict(delivery.body))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise PermanentError(f"not a vault file event: {where}: {first['msg']}") from None
    if not event.content_hash:
        raise PermanentError(f"{event.event_type} of {event.file_path} carries no content hash")
    return event
