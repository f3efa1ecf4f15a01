"""`weavenn up` without the terminal: prepare, supervise, report snapshots, stop in order."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from weavenn_cli.runtime.config import Settings
from weavenn_cli.runtime.stack import plan as stack_plan
from weavenn_cli.runtime.stack.probe import (
    StackFacts,
    StackProbe,
    StackStatus,
    active_queues,
    stack_status,
)
from weavenn_cli.runtime.stack.state import SupervisorRecord, read_state
from weavenn_cli.runtime.stack.supervisor import STOP_DEADLINE_SECONDS, Supervisor

POLL_SECONDS = 0.25
FACTS_SECONDS = 2.0
SUPERVISOR_LOGGER = "weavenn_cli.runtime.stack.supervisor"


@dataclass
class Stack:
    plan: stack_plan.StackPlan
    supervisor: Supervisor
    probe: StackProbe


def build_stack(
    settings: Settings,
    options: stack_plan.StackOptions,
    *,
    stop_deadline: float = STOP_DEADLINE_SECONDS,
) -> Stack:
    """Check that nothing is in the way, then describe the processes (nothing starts yet)."""
    plan = stack_plan.plan_stack(settings, options)
    stack_plan.ensure_not_running(stack_plan.STATE_FILE)
    stack_plan.ensure_port_free(options.host, options.port)
    stack_plan.ensure_vault(plan.vault)
    now = time.time()
    record = SupervisorRecord(
        pid=os.getpid(),
        state="starting",
        started_at=now,
        updated_at=now,
        api_url=plan.api_url,
        vault=str(plan.vault),
        transport=plan.transport,
        log_dir=str(stack_plan.LOG_DIR.resolve()),
    )
    supervisor = Supervisor(
        plan.children,
        idle=plan.idle,
        log_dir=stack_plan.LOG_DIR.resolve(),
        state_file=stack_plan.STATE_FILE.resolve(),
        record=record,
        env=stack_plan.child_environment(dict(os.environ), plan.vault),
        stop_deadline=stop_deadline,
    )
    queues = frozenset(child.queue for child in plan.children if child.queue)
    return Stack(plan, supervisor, StackProbe(settings, plan.vault, plan.api_url, queues))


class _FactsReader(threading.Thread):
    """Reads the facts every few seconds off the supervising thread (a slow broker or git
    must never delay a restart)."""

    def __init__(self, probe: StackProbe) -> None:
        super().__init__(name="stack-facts", daemon=True)
        self.probe = probe
        self.latest = StackFacts()
        self._done = threading.Event()

    def run(self) -> None:
        while True:
            self.latest = self.probe.collect()
            if self._done.wait(FACTS_SECONDS):
                return

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)


def run_stack(
    stack: Stack, stop: threading.Event, on_update: Callable[[StackStatus], None]
) -> None:
    """Run until `stop` is set, calling `on_update` with a snapshot a few times a second;
    then stop every child in order. The children are stopped whatever happens here."""
    reader = _FactsReader(stack.probe)
    journal = _journal(stack.supervisor.log_dir / "up.log")

    def update() -> None:
        on_update(stack_status(stack.supervisor.record, reader.latest, stack.plan.vault))

    try:
        stack.supervisor.start()
        reader.start()
        while not stop.wait(POLL_SECONDS):
            stack.supervisor.poll()
            update()
    finally:
        stack.supervisor.stop(on_progress=update)
        if reader.is_alive():
            reader.stop()
        stack.probe.close()
        update()
        logging.getLogger(SUPERVISOR_LOGGER).removeHandler(journal)
        journal.close()


def _journal(path: Path) -> logging.Handler:
    """The supervisor's starts, exits, restarts and stops, also kept in a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger(SUPERVISOR_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def current_status(settings: Settings, state_file: Path = stack_plan.STATE_FILE) -> StackStatus:
    """For `weavenn status`: the state file of this folder's `up` and fresh facts."""
    record = read_state(state_file)
    vault = Path(record.vault) if record is not None else settings.vault_path.expanduser().resolve()
    if record is None:
        probe = StackProbe(settings, vault, None)
    else:
        probe = StackProbe(settings, vault, record.api_url, active_queues(record.processes))
    try:
        facts = probe.collect()
    finally:
        probe.close()
    return stack_status(record, facts, vault)
