"""Pushing the vault on a thread of its own, so a slow or unreachable remote never holds a batch.

The runner applies a batch inside a database transaction (on SQLite, the write lock): a commit
is local and quick, a push may wait on the network. So the consumer only asks for a push after
each commit; this thread pushes, retries a failed push with a growing delay (or sooner, after
the next commit), and reports what a rebase had to resolve.
"""

from __future__ import annotations

import logging
import threading

from weavenn_cli.runtime.bus.backoff import Backoff
from weavenn_cli.runtime.git.autocommit import PushDeferred, PushResult, VaultRepository
from weavenn_cli.runtime.git.repository import GitFailed
from weavenn_cli.runtime.redaction import redact_credentials

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 5.0
RETRY_CAP_SECONDS = 600.0


class Pusher:
    def __init__(
        self,
        repository: VaultRepository,
        remote: str,
        branch: str | None,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.repository = repository
        self.remote = remote
        self.branch = branch
        self.last_result: PushResult | None = None
        self._backoff = backoff or Backoff(base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS)
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request(self) -> None:
        """Push soon (now, unless a push is running: then right after it)."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="weavenn-git-push", daemon=True
                )
                self._thread.start()
        self._wanted.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the push in hand (within `timeout`) and stop."""
        self._stopping.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        retry_in: float | None = None
        while True:
            self._wanted.wait(retry_in)
            if self._stopping.is_set():
                return
            self._wanted.clear()
            retry_in = self._push_once()

    def _push_once(self) -> float | None:
        """Push; on failure the delay before trying again, else None."""
        try:
            result = self.repository.push_branch(self.remote, self.branch)
        except (PushDeferred, GitFailed) as error:
            delay = self._backoff.next_delay()
            log.warning(
                "not pushed yet, trying again in %.0fs or after the next commit: %s",
                delay,
                redact_credentials(str(error.args[0] if error.args else error)),
            )
            return delay
        except Exception:  # never let the thread die: the next commit asks again
            delay = self._backoff.next_delay()
            log.exception("push failed unexpectedly; trying again in %.0fs", delay)
            return delay
        self._backoff.reset()
        self.last_result = result
        _report(result)
        return None


def _report(result: PushResult) -> None:
    for kept in result.conflicts:
        if kept.saved_as:
            log.warning(
                "%s changed on both sides: kept the remote version, ours is saved as %s",
                kept.path,
                kept.saved_as,
            )
        else:
            log.warning("%s changed remotely and was deleted here: kept the remote one", kept.path)
