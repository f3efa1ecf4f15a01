"""What `weavenn rollout` asks of the store, put together for display."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.rollout.cohorts import Side, bucket, side_of, threshold
from weavenn_cli.runtime.rollout.stats import Traffic
from weavenn_cli.runtime.rollout.store import Change, HistoryEntry, RolloutState, RolloutStore

RECENT_USERS = timedelta(days=7)
RECENT_TRAFFIC = timedelta(minutes=5)


@dataclass(frozen=True)
class Move:
    """Users seen recently whose side a change of percentage flips."""

    moving: int
    seen: int
    to: Side
    since: datetime

    @property
    def share(self) -> float:
        return 100.0 * self.moving / self.seen if self.seen else 0.0


@dataclass(frozen=True)
class ServiceStatus:
    state: RolloutState
    last_change: HistoryEntry | None
    traffic: Traffic


@dataclass(frozen=True)
class Placement:
    service: str
    user_id: str
    bucket: int
    percent: int
    side: Side


def move_of(store: RolloutStore, change: Change) -> Move | None:
    before, after = change.before.percent, change.after.percent
    if before == after:
        return None
    low, high = sorted((threshold(before), threshold(after)))
    since = utcnow() - RECENT_USERS
    moving, seen = store.users_seen(change.after.service, since, range(low, high))
    return Move(moving, seen, "new" if after > before else "legacy", since)


def status_of(store: RolloutStore, service: str) -> ServiceStatus:
    return ServiceStatus(
        store.state(service),
        store.last_change(service),
        store.traffic(service, utcnow() - RECENT_TRAFFIC),
    )


def placement_of(store: RolloutStore, service: str, user_id: str) -> Placement:
    percent = store.state(service).percent
    return Placement(
        service, user_id, bucket(service, user_id), percent, side_of(service, user_id, percent)
    )
