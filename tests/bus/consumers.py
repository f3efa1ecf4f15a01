"""Small consumers the bus tests run, in process and as `weavenn consume tests.bus.consumers:X`.

Their effect is a row in `test_effects`, written in the runner's transaction, so a test can
count how many times each message took effect. Behaviour is chosen by the event's file path:
`fail-always…` raises, `fail-once…` fails its first attempt, `permanent…` is refused for good,
`blocked…` fails while the file named by TEST_BLOCK_FILE exists, `kill-process…` kills
its own process (SIGKILL) when TEST_KILL_PROCESS=1; TEST_HANDLER_SLEEP slows
every message down, and TEST_STARTED_FILE gets a line per handler call.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert
from sqlalchemy.orm import Session

from weavenn_cli.runtime.consumers.base import Delivery, PermanentError
from weavenn_cli.runtime.db.engine import parse_database_url

metadata = MetaData()
effects = Table(
    "test_effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("consumer", String(64), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("file_path", String(255), nullable=False),
    Column("batch", String(64), nullable=True),
)


def create_effects_table(database_url: str) -> None:
    engine = create_engine(parse_database_url(database_url))
    metadata.create_all(engine)
    engine.dispose()


def _behave(delivery: Delivery) -> None:
    started = os.environ.get("TEST_STARTED_FILE")
    if started:
        with open(started, "a") as log:
            log.write(f"{delivery.message_id} {delivery.attempt}\n")
    sleep = float(os.environ.get("TEST_HANDLER_SLEEP", "0"))
    if sleep:
        time.sleep(sleep)
    path = str(delivery.body.get("file_path", ""))
    if path.startswith("kill-process") and os.environ.get("TEST_KILL_PROCESS") == "1":
        os.kill(os.getpid(), signal.SIGKILL)  # dies mid-handling, as an out-of-memory kill
    if path.startswith("fail-always"):
        raise RuntimeError(f"cannot apply {path}")
    if path.startswith("fail-once") and delivery.attempt == 1:
        raise RuntimeError(f"first attempt at {path} fails")
    if path.startswith("permanent"):
        raise PermanentError(f"{path} can never be applied")
    block = os.environ.get("TEST_BLOCK_FILE")
    if path.startswith("blocked") and block and Path(block).exists():
        raise PermanentError(f"{path} is blocked")


class RecordingConsumer:
    """Records each vault event it applies."""

    name: ClassVar[str] = "recorder"
    queue: ClassVar[str] = "mcp_sync"
    bindings: ClassVar[tuple[str, ...]] = ("vault.file.*",)

    def handle(self, session: Session, delivery: Delivery) -> None:
        session.execute(
            insert(effects).values(
                consumer=self.name,
                message_id=delivery.message_id,
                file_path=str(delivery.body.get("file_path", "")),
            )
        )
        _behave(delivery)


class BatchingConsumer:
    """Applies events five at a time, or after 0.3 s without a new one (git-auto-commit's way)."""

    name: ClassVar[str] = "batcher"
    queue: ClassVar[str] = "git_auto_commit"
    bindings: ClassVar[tuple[str, ...]] = ("vault.file.*",)
    batch_size = 5
    batch_idle_seconds = 0.3

    def handle_batch(
        self, session: Session, deliveries: Sequence[Delivery]
    ) -> Mapping[str, Exception]:
        batch = uuid.uuid4().hex
        failures: dict[str, Exception] = {}
        for delivery in deliveries:
            try:
                _behave(delivery)
            except Exception as error:
                failures[delivery.message_id] = error
                continue
            session.execute(
                insert(effects).values(
                    consumer=self.name,
                    message_id=delivery.message_id,
                    file_path=str(delivery.body.get("file_path", "")),
                    batch=batch,
                )
            )
        return failures


class SinkingBatchConsumer(BatchingConsumer):
    """A batch that holds a `poison…` event raises as a whole; one at a time, only the poison
    fails (for good): the runner must fall back to applying the batch message by message."""

    name: ClassVar[str] = "sinker"

    def handle_batch(
        self, session: Session, deliveries: Sequence[Delivery]
    ) -> Mapping[str, Exception]:
        if any(str(d.body.get("file_path", "")).startswith("poison") for d in deliveries):
            raise RuntimeError("the batch sinks")
        return super().handle_batch(session, deliveries)

    def handle(self, session: Session, delivery: Delivery) -> None:
        if str(delivery.body.get("file_path", "")).startswith("poison"):
            raise PermanentError("poison")
        session.execute(
            insert(effects).values(
                consumer=self.name,
                message_id=delivery.message_id,
                file_path=str(delivery.body.get("file_path", "")),
            )
        )


class CommitEachConsumer(RecordingConsumer):
    """Asks for a commit per message; records, as its batch, how many effects other
    connections could see when it started each message."""

    name: ClassVar[str] = "commit-each"
    commit_each: ClassVar[bool] = True

    def __init__(self, count_committed: Callable[[], int]) -> None:
        self._count_committed = count_committed

    def handle(self, session: Session, delivery: Delivery) -> None:
        session.execute(
            insert(effects).values(
                consumer=self.name,
                message_id=delivery.message_id,
                file_path=str(delivery.body.get("file_path", "")),
                batch=str(self._count_committed()),
            )
        )
