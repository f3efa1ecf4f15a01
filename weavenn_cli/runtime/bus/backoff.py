"""Exponential backoff with jitter, for reconnecting to a broker or a database."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays that double from `base` up to `cap`, each drawn from its upper half.

    The jitter keeps a fleet of consumers that lost the broker together from reconnecting in
    lockstep; the lower bound keeps a single consumer from hammering it.
    """

    base: float = 0.5
    cap: float = 30.0
    _failures: int = field(default=0, init=False)

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(self._failures, 32))
        self._failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._failures = 0
