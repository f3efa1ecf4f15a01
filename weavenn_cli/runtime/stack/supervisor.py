"""Child processes kept running: restarted with backoff after a crash, stopped in order.

Each child runs in a session (process group) of its own: a Ctrl-C in the terminal reaches the
supervisor only, which then stops the children in the order that loses nothing (the watcher
first, so no new events; then the consumers, which finish the messages in hand; the API last),
and a SIGKILL after the deadline takes the whole group, grandchildren included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from weavenn_cli.runtime.stack.state import ProcessRecord, SupervisorRecord, write_state

log = logging.getLogger(__name__)

RESTART_BASE_SECONDS = 1.0
RESTART_CAP_SECONDS = 30.0
STABLE_SECONDS = 30.0
"""A child that ran this long before it exited starts again from the shortest delay."""
STOP_DEADLINE_SECONDS = 20.0
"""How long one stage of the stop may take before its processes are killed."""


@dataclass(frozen=True)
class ChildSpec:
    """A process to keep running: `command` is the full argument list."""

    name: str
    command: tuple[str, ...]
    stop_stage: int  # stages stop in increasing order
    env: dict[str, str] = field(default_factory=dict)
    queue: str | None = None  # the queue a consumer reads


@dataclass(frozen=True)
class IdleEntry:
    """A process the stack would run but does not: switched off or not configured."""

    name: str
    state: str
    note: str
    queue: str | None = None


def restart_delay(failures_in_a_row: int) -> float:
    """1 s, 2 s, 4 s … up to 30 s: a child that keeps crashing does not spin."""
    exponent = max(failures_in_a_row - 1, 0)
    return float(min(RESTART_CAP_SECONDS, RESTART_BASE_SECONDS * 2**exponent))


class Child:
    """One supervised process and its history."""

    def __init__(self, spec: ChildSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.state = "stopped"
        self.started_at: float | None = None  # wall clock, for other processes to read
        self._started_monotonic = 0.0
        self.restarts = 0
        self.failures_in_a_row = 0
        self.restart_at: float | None = None  # monotonic
        self.last_exit: int | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.state != "stopped" else None

    def start(self, base_env: dict[str, str], cwd: Path) -> None:
        with self.log_path.open("ab") as handle:
            _write_banner(handle, f"starting: {' '.join(self.spec.command)}")
            self.process = subprocess.Popen(
                self.spec.command,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env={**base_env, **self.spec.env},
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        self.state = "running"
        self.started_at = time.time()
        self._started_monotonic = time.monotonic()
        self.restart_at = None

    def exited(self) -> int | None:
        """The exit code when the process ended since the last look, else None."""
        if self.state not in ("running", "stopping") or self.process is None:
            return None
        return self.process.poll()

    def schedule_restart(self, code: int) -> float:
        ran_for = time.monotonic() - self._started_monotonic
        self.failures_in_a_row = 1 if ran_for >= STABLE_SECONDS else self.failures_in_a_row + 1
        delay = restart_delay(self.failures_in_a_row)
        self.last_exit = code
        self.state = "restarting"
        self.restart_at = time.monotonic() + delay
        return delay

    def signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def record(self) -> ProcessRecord:
        restart_at = None
        if self.restart_at is not None:
            restart_at = time.time() + max(self.restart_at - time.monotonic(), 0.0)
        return ProcessRecord(
            name=self.spec.name,
            state=self.state,
            command=list(self.spec.command),
            log=str(self.log_path),
            pid=self.pid,
            started_at=self.started_at if self.state in ("running", "stopping") else None,
            restarts=self.restarts,
            restart_at=restart_at,
            last_exit=self.last_exit,
            queue=self.spec.queue,
        )


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a child gets SIGTERM when the supervisor dies without stopping it (kill -9,
    the out-of-memory killer): no orphan keeps the port or the queue. Elsewhere, nothing."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arrange() -> None:  # runs in the child between fork and exec: no locks, no imports
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before the call: go now
            os._exit(1)

    return arrange


PR_SET_PDEATHSIG = 1


def _write_banner(handle: IO[bytes], text: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    handle.write(f"--- weavenn up {stamp}: {text}\n".encode())
    handle.flush()


class Supervisor:
    """Starts the children, restarts the ones that exit, stops them all in stage order."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        log_dir: Path,
        state_file: Path,
        record: SupervisorRecord,
        idle: Sequence[IdleEntry] = (),
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stop_deadline: float = STOP_DEADLINE_SECONDS,
    ) -> None:
        self.children = [Child(spec, log_dir / f"{spec.name}.log") for spec in specs]
        self.idle = list(idle)
        self.log_dir = log_dir
        self.state_file = state_file
        self.record = record
        self.stop_deadline = stop_deadline
        self._env = dict(env if env is not None else os.environ)
        self._cwd = cwd or Path.cwd()

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.record.state = "running"
        for child in self.children:
            child.start(self._env, self._cwd)
            log.info("%s started (pid %s), log in %s", child.spec.name, child.pid, child.log_path)
        self.save()

    def poll(self) -> None:
        """Notice exits and start the children whose restart is due; save any change."""
        changed = False
        for child in self.children:
            code = child.exited()
            if code is not None:
                delay = child.schedule_restart(code)
                log.warning(
                    "%s exited with code %s; restarting in %.0fs (see %s)",
                    child.spec.name,
                    code,
                    delay,
                    child.log_path,
                )
                changed = True
            elif child.state == "restarting" and time.monotonic() >= (child.restart_at or 0):
                child.restarts += 1
                child.start(self._env, self._cwd)
                log.info(
                    "%s restarted (pid %s, restart %d)", child.spec.name, child.pid, child.restarts
                )
                changed = True
        if changed:
            self.save()

    def stop(self, on_progress: Callable[[], None] | None = None) -> None:
        """SIGTERM stage by stage, SIGKILL a stage's groups after the deadline; never raises."""
        self.record.state = "stopping"
        for stage in sorted({child.spec.stop_stage for child in self.children}):
            members = [c for c in self.children if c.spec.stop_stage == stage]
            self._stop_stage(members)
            if on_progress is not None:
                on_progress()
        self.record.state = "stopped"
        self.save()

    def _stop_stage(self, members: list[Child]) -> None:
        running = []
        for child in members:
            if child.state in ("running", "stopping") and child.process is not None:
                child.state = "stopping"
                child.signal_group(signal.SIGTERM)
                running.append(child)
            else:
                child.state = "stopped"
                child.restart_at = None
        self.save()
        deadline = time.monotonic() + self.stop_deadline
        for child in running:
            assert child.process is not None
            try:
                child.last_exit = child.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s did not stop within %.0fs: killed", child.spec.name, self.stop_deadline
                )
                child.signal_group(signal.SIGKILL)
                child.last_exit = child.process.wait()
            # Whatever the child started in its group goes with it.
            child.signal_group(signal.SIGKILL)
            child.state = "stopped"
            log.info("%s stopped (exit code %s)", child.spec.name, child.last_exit)
        self.save()

    def processes(self) -> list[ProcessRecord]:
        rows = [child.record() for child in self.children]
        for idle in self.idle:
            rows.append(ProcessRecord(idle.name, idle.state, [], note=idle.note, queue=idle.queue))
        return rows

    def save(self) -> None:
        self.record.processes = self.processes()
        self.record.updated_at = time.time()
        write_state(self.state_file, self.record)
