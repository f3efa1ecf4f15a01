"""A circuit breaker per extracted service, in each serving process.

After `failures` failures in a row of the new side, the breaker opens: everyone is served by
the legacy side for `cooldown` seconds. Then one request is let through as a trial; its
success closes the breaker, its failure opens it for another cooldown. A few dozen lines
of state, used from one event loop: a library would bring more than it saves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

logger = logging.getLogger("weavenn.rollout")

State = Literal["closed", "open", "trial"]


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failures: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = failures
        self.cooldown = cooldown
        self.clock = clock
        self.state: State = "closed"
        self.failures_in_a_row = 0
        self.since = 0.0  # when the breaker opened, or when its trial request started

    def allows(self) -> bool:
        """May this request go to the new side? Past the cooldown, one trial request may.

        A trial that never reported (its client went away) is replaced after a cooldown.
        """
        if self.state == "closed":
            return True
        if self.clock() - self.since >= self.cooldown:
            self.state = "trial"
            self.since = self.clock()
            return True
        return False

    def succeeded(self) -> None:
        if self.state != "closed":
            logger.warning("%s: new side answers again; circuit closed", self.name)
        self.state = "closed"
        self.failures_in_a_row = 0

    def failed(self, reason: str) -> None:
        self.failures_in_a_row += 1
        if self.state == "trial" or (
            self.state == "closed" and self.failures_in_a_row >= self.threshold
        ):
            self.state = "open"
            self.since = self.clock()
            logger.warning(
                "%s: circuit open after %d failures in a row (last: %s); everyone goes to "
                "the legacy side for %g s",
                self.name,
                self.failures_in_a_row,
                reason,
                self.cooldown,
            )

    @property
    def is_open(self) -> bool:
        return self.state != "closed"
