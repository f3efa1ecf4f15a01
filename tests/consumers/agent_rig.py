"""A vault, a database at head and the agent-tasks consumer, driven as the pipeline drives it:
each save becomes the watcher's event, mcp-sync's cache takes it, then agent-tasks handles it
inside a transaction as the runner does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from weavenn_cli.runtime.agent.engine import Agent, Summarizer
from weavenn_cli.runtime.agent.rules import Rules, load_rules
from weavenn_cli.runtime.agent.store import SuggestionView, suggestions_for
from weavenn_cli.runtime.consumers.agent_tasks import AgentTasksConsumer
from weavenn_cli.runtime.consumers.base import Delivery
from weavenn_cli.runtime.db.engine import make_engine, session_factory, session_scope
from weavenn_cli.runtime.db.models import AgentWriteback, OutboxMessage
from weavenn_cli.runtime.events import VaultFileEvent
from weavenn_cli.runtime.vault import cache
from weavenn_cli.runtime.vault.publish import vault_event

RULES_YAML = """
max_tags: 3
folders:
  features/: type/feature
keywords:
  kubernetes: topic/kubernetes
  rollout: topic/rollout
"""


class AgentRig:
    def __init__(
        self,
        database_url: str,
        vault: Path,
        *,
        apply_links: bool = False,
        summarizer: Summarizer | None = None,
        rules: Rules | None = None,
    ) -> None:
        self.vault = vault
        self.engine = make_engine(database_url)
        self.factory = session_factory(self.engine)
        self.sequence = 0
        if rules is None:
            path = vault.parent / "rules.yaml"
            path.write_text(RULES_YAML)
            rules = load_rules(path)
        agent = Agent(rules, rules.max_tags, apply_links, summarizer)
        self.consumer = AgentTasksConsumer(agent, vault, vault_id="test-vault")

    def close(self) -> None:
        self.engine.dispose()

    # -- the pipeline, one step at a time ----------------------------------------------------

    def save(self, path: str, text: str | bytes) -> VaultFileEvent:
        """Write the note as a person would; the watcher's event, applied to the cache."""
        target = self.vault / path
        existed = target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text if isinstance(text, bytes) else text.encode())
        return self.observe(path, "vault.file.updated" if existed else "vault.file.created")

    def observe(self, path: str, kind: str = "vault.file.updated") -> VaultFileEvent:
        """The event the watcher publishes for the file as it is now (mcp-sync applies it)."""
        self.sequence += 1
        event = vault_event(
            vault_id="test-vault",
            kind=kind,  # type: ignore[arg-type]
            path=path,
            sequence=self.sequence,
            content=(self.vault / path).read_bytes(),
            max_text_bytes=262_144,
            max_event_bytes=1_048_576,
        )
        with session_scope(self.factory) as session:
            cache.apply_event(session, event)
        return event

    def deliver(
        self, event: VaultFileEvent | dict[str, Any], routing_key: str | None = None
    ) -> None:
        body = event.model_dump(mode="json") if isinstance(event, VaultFileEvent) else event
        delivery = Delivery(
            message_id=body["message_id"],
            routing_key=routing_key or body["event_type"],
            body=body,
        )
        with session_scope(self.factory) as session, session.begin_nested():
            self.consumer.handle(session, delivery)

    # -- what happened --------------------------------------------------------------------

    def read(self, path: str) -> bytes:
        return (self.vault / path).read_bytes()

    def writebacks(self) -> list[tuple[str, str, str]]:
        with self.factory() as session:
            rows = session.execute(
                select(AgentWriteback.path, AgentWriteback.content_hash, AgentWriteback.rules)
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]

    def published(self, prefix: str = "vault.metadata.") -> list[dict[str, Any]]:
        with self.factory() as session:
            rows = session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.routing_key.startswith(prefix))
                .order_by(OutboxMessage.id)
            ).all()
            return [json.loads(row.payload) for row in rows]

    def outbox_count(self) -> int:
        with self.factory() as session:
            return int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)

    def suggestions(self, path: str) -> list[SuggestionView]:
        session: Session
        with self.factory() as session:
            return suggestions_for(session, path)
