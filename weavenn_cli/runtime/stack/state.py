"""The supervisor's state file (`./data/up.json`): how `weavenn status` sees a running `up`.

`up` rewrites it (atomically) whenever a process changes state; `status` reads it from
another terminal. Times are epoch seconds, so readers compute uptimes themselves.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from weavenn_cli.runtime.errors import WeavennError

STATE_FILE_NAME = "up.json"


@dataclass
class ProcessRecord:
    """One supervised process as the state file holds it."""

    name: str
    state: str  # running, restarting, stopping, stopped, disabled, not configured
    command: list[str]
    log: str | None = None
    pid: int | None = None
    started_at: float | None = None
    restarts: int = 0
    restart_at: float | None = None
    last_exit: int | None = None
    note: str | None = None
    queue: str | None = None


@dataclass
class SupervisorRecord:
    """`weavenn up` itself: its pid, where the stack answers, and every process."""

    pid: int
    state: str  # running, stopping, stopped
    started_at: float
    updated_at: float
    api_url: str
    vault: str
    transport: str
    log_dir: str
    processes: list[ProcessRecord] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        """Whether the `up` that wrote this is still running (not stopped, not killed)."""
        return self.state != "stopped" and pid_alive(self.pid)


def write_state(path: Path, record: SupervisorRecord) -> None:
    """Replace the file in one rename, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".up-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(record), handle, indent=2)
    os.replace(temporary, path)


def read_state(path: Path) -> SupervisorRecord | None:
    """The last state `up` wrote here, or None when it never ran in this folder."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        message = f"cannot read {path}: {error}; delete it if `up` is not running"
        raise WeavennError(message) from None
    processes = [ProcessRecord(**item) for item in data.pop("processes", [])]
    return SupervisorRecord(**data, processes=processes)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A child that exited but was not reaped yet still answers kill(0) (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
