"""git-auto-commit: keeps the vault under version control from vault file events.

A batch consumer: the runner hands it the events that arrived until changes went quiet
(GIT_COMMIT_DEBOUNCE_SECONDS, restarted by each arrival) or AUTOCOMMIT_BATCH_SIZE were pending,
and acknowledges them only after `handle_batch` returned, so an event is acked once its change
is in a commit (or needs none) and pending changes survive a restart. Each batch is one commit;
with GIT_REMOTE_PUSH a push follows on the pusher's thread, outside the batch's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.consumers.base import Delivery, PermanentError
from weavenn_cli.runtime.db.models.agent import AgentWriteback
from weavenn_cli.runtime.events import VAULT_FILE_MOVED, VaultFileEvent
from weavenn_cli.runtime.files.errors import InvalidPath, ProtectedPath
from weavenn_cli.runtime.files.paths import vault_path
from weavenn_cli.runtime.git.autocommit import (
    IndexLocked,
    Requested,
    VaultRepository,
    check_push_target,
    identity_environment,
)
from weavenn_cli.runtime.git.changes import skip_reason
from weavenn_cli.runtime.git.pusher import Pusher
from weavenn_cli.runtime.git.repository import GitFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushTarget:
    remote: str
    branch: str | None  # None: the current branch


class GitAutoCommitConsumer:
    name: ClassVar[str] = "git-auto-commit"
    queue: ClassVar[str] = "git_auto_commit"
    bindings: ClassVar[tuple[str, ...]] = ("vault.file.*",)

    def __init__(
        self,
        repository: VaultRepository,
        *,
        batch_size: int = 10,
        batch_idle_seconds: float = 5.0,
        push: PushTarget | None = None,
    ) -> None:
        self.repository = repository
        self.batch_size = batch_size
        self.batch_idle_seconds = batch_idle_seconds
        self.pusher = Pusher(repository, push.remote, push.branch) if push else None
        # An earlier run may have stopped with commits not yet pushed: push after the first batch.
        self._pushed_since_start = False

    @classmethod
    def from_settings(cls, settings: Settings) -> GitAutoCommitConsumer:
        """Opens (or initialises) the vault repository: refuses to start when it cannot."""
        check_push_target(settings.git_remote, settings.git_branch)
        repository = VaultRepository.open(
            settings.vault_path,
            env=identity_environment(settings.git_author_name, settings.git_author_email),
            auto_init=settings.git_auto_init,
            branch=settings.git_branch,
        )
        push = PushTarget(settings.git_remote, settings.git_branch)
        return cls(
            repository,
            batch_size=settings.autocommit_batch_size,
            batch_idle_seconds=settings.git_commit_debounce_seconds,
            push=push if settings.git_remote_push else None,
        )

    def handle_batch(
        self, session: Session, deliveries: Sequence[Delivery]
    ) -> Mapping[str, Exception]:
        failures: dict[str, Exception] = {}
        events: list[VaultFileEvent] = []
        requested: list[Requested] = []
        for delivery in deliveries:
            try:
                event = _vault_event(delivery)
                request = _requested(event, self.repository.vault)
            except PermanentError as error:
                failures[delivery.message_id] = error
                continue
            events.append(event)
            if request is not None:
                requested.append(request)
        try:
            committed = self._commit(session, requested, events)
        except (IndexLocked, GitFailed) as error:
            # Nothing was committed: every event of the batch is tried again later.
            failures.update({event.message_id: error for event in events})
            return failures
        if self.pusher is not None and (committed or not self._pushed_since_start):
            self.pusher.request()
            self._pushed_since_start = True
        return failures

    def close(self) -> None:
        """Called by the runner when it stops: let a push in flight finish."""
        if self.pusher is not None:
            self.pusher.stop()

    def _commit(
        self, session: Session, requested: Sequence[Requested], events: Sequence[VaultFileEvent]
    ) -> bool:
        result = self.repository.commit_requested(requested, _agent_rules(session, events))
        if result is None:
            if requested:
                log.debug("%d paths named, none changed: no commit", len(requested))
            return False
        subject = result.message.splitlines()[0]
        log.info("committed %s: %s", result.sha[:10], subject)
        return True


def _vault_event(delivery: Delivery) -> VaultFileEvent:
    try:
        event = VaultFileEvent.model_validate(dict(delivery.body))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise PermanentError(f"not a vault file event: {where}: {first['msg']}") from None
    if event.event_type == VAULT_FILE_MOVED and not event.old_path:
        raise PermanentError(f"vault.file.moved to {event.file_path} has no old_path")
    return event


def _requested(event: VaultFileEvent, vault: Path) -> Requested | None:
    """The paths of `event` that may be committed; None when none may (logged)."""
    paths = [path for path in (event.old_path, event.file_path) if path]
    allowed = [path for path in paths if _committable(path, vault)]
    if not allowed:
        return None
    if len(allowed) == 2:
        return Requested(path=event.file_path, old_path=event.old_path)
    return Requested(path=allowed[0])


def _committable(path: str, vault: Path) -> bool:
    protected = None
    try:
        vault_path(path)
    except ProtectedPath as error:  # a safe path, in .obsidian, .git or _system
        protected = error.message
    except InvalidPath as error:
        raise PermanentError(f"cannot commit {path!r}: {error.message}") from None
    reason = skip_reason(path, vault) or protected
    if reason is None:
        return True
    log.info("not committing %s: %s", path, reason)
    return False


def _agent_rules(session: Session, events: Iterable[VaultFileEvent]) -> dict[str, str]:
    """Paths whose latest version in the batch was written by agent rules, with those rules."""
    latest: dict[str, VaultFileEvent] = {}
    for event in events:
        current = latest.get(event.file_path)
        if current is None or event.sequence >= current.sequence:
            latest[event.file_path] = event
    keys = [(path, event.content_hash) for path, event in latest.items() if event.content_hash]
    if not keys:
        return {}
    rows = session.execute(
        select(AgentWriteback.path, AgentWriteback.rules).where(
            tuple_(AgentWriteback.path, AgentWriteback.content_hash).in_(keys)
        )
    )
    return {path: rules for path, rules in rows}
