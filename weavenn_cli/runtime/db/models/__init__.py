"""All tables of Weave-NN. Importing this package registers every model on `Base.metadata`."""

from weavenn_cli.runtime.db.models.agent import AgentWriteback, LinkSuggestion
from weavenn_cli.runtime.db.models.base import Base
from weavenn_cli.runtime.db.models.bus import (
    ConsumerPresence,
    DeadLetter,
    DeliveryAttempt,
    InboxEntry,
    Lease,
    OutboxMessage,
    QueuedMessage,
)
from weavenn_cli.runtime.db.models.migration import (
    BackfillCheckpoint,
    BackfillReject,
    DualWriteFailure,
    RuntimeFlag,
    VerifyRun,
)
from weavenn_cli.runtime.db.models.rollout import (
    Rollout,
    RolloutEvent,
    RolloutMismatch,
    RolloutStat,
    RolloutUser,
)
from weavenn_cli.runtime.db.models.tasks import Task
from weavenn_cli.runtime.db.models.vault import (
    Note,
    NoteHeading,
    NoteLink,
    NoteTag,
    NoteVersion,
    PublishedFile,
)

__all__ = [
    "AgentWriteback",
    "BackfillCheckpoint",
    "BackfillReject",
    "Base",
    "ConsumerPresence",
    "DeadLetter",
    "DeliveryAttempt",
    "DualWriteFailure",
    "InboxEntry",
    "Lease",
    "LinkSuggestion",
    "Note",
    "NoteHeading",
    "NoteLink",
    "NoteTag",
    "NoteVersion",
    "OutboxMessage",
    "PublishedFile",
    "QueuedMessage",
    "Rollout",
    "RolloutEvent",
    "RolloutMismatch",
    "RolloutStat",
    "RolloutUser",
    "RuntimeFlag",
    "Task",
    "VerifyRun",
]
