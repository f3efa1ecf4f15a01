"""The supervisor with plain Python children: restarts with backoff, ordered stop, no orphan."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bus.harness import wait_until
from weavenn_cli.runtime.stack.state import SupervisorRecord, pid_alive, read_state
from weavenn_cli.runtime.stack.supervisor import ChildSpec, IdleEntry, Supervisor, restart_delay


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def record() -> SupervisorRecord:
    now = time.time()
    return SupervisorRecord(os.getpid(), "starting", now, now, "http://x", "/v", "embedded", "/l")


def supervisor(tmp_path: Path, *specs: ChildSpec, **kwargs: object) -> Supervisor:
    return Supervisor(
        specs,
        log_dir=tmp_path / "logs",
        state_file=tmp_path / "up.json",
        record=record(),
        **kwargs,  # type: ignore[arg-type]
    )


# Writes its name to the file in $STOPS on SIGTERM, then exits 0.
STOPS_ON_SIGTERM = (
    "import os, signal, sys, time\n"
    "def stop(*_):\n"
    "    with open(os.environ['STOPS'], 'a') as f: f.write(sys.argv[1] + '\\n')\n"
    "    time.sleep(0.2)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "while True: time.sleep(0.1)\n"
)


def test_restart_delays_double_from_one_second_up_to_thirty() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4, 5, 6, 7, 20)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_child_that_keeps_crashing_is_restarted_with_growing_delays(tmp_path: Path) -> None:
    crashing = ChildSpec("crashing", python("import sys; print('boom'); sys.exit(3)"), 0)
    sup = supervisor(tmp_path, crashing)
    sup.start()
    try:
        child = sup.children[0]
        wait_until(lambda: sup.poll() or child.restarts >= 2, timeout=20, what="two restarts")
        assert child.last_exit == 3
        assert child.failures_in_a_row >= 2
        wait_until(lambda: sup.poll() or child.state == "restarting", what="a pending restart")
        saved = read_state(tmp_path / "up.json")
        assert saved is not None
        (row,) = saved.processes
        assert row.state == "restarting" and row.restarts >= 2 and row.last_exit == 3
        assert row.restart_at is not None and row.restart_at > time.time()
        assert (tmp_path / "logs" / "crashing.log").read_text().count("boom") >= 3
    finally:
        sup.stop()


def test_stop_goes_stage_by_stage_and_every_child_exits(tmp_path: Path) -> None:
    stops = tmp_path / "stops.txt"
    specs = [
        ChildSpec("serve", (*python(STOPS_ON_SIGTERM), "serve"), 2),
        ChildSpec("consumer-a", (*python(STOPS_ON_SIGTERM), "consumer-a"), 1),
        ChildSpec("watch", (*python(STOPS_ON_SIGTERM), "watch"), 0),
    ]
    sup = supervisor(tmp_path, *specs, env={**os.environ, "STOPS": str(stops)})
    sup.start()
    pids = [child.pid for child in sup.children]
    time.sleep(0.5)  # let the children install their handlers
    sup.stop()
    assert stops.read_text().split() == ["watch", "consumer-a", "serve"]
    assert not any(pid_alive(pid) for pid in pids)
    saved = read_state(tmp_path / "up.json")
    assert saved is not None and saved.state == "stopped"
    assert {row.state for row in saved.processes} == {"stopped"}
    assert {row.last_exit for row in saved.processes} == {0}


def test_a_child_deaf_to_sigterm_is_killed_at_the_deadline_with_its_own_children(
    tmp_path: Path,
) -> None:
    grandchild_file = tmp_path / "grandchild.pid"
    deaf = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(grandchild_file)!r}, 'w').write(str(child.pid))\n"
        "while True: time.sleep(0.1)\n"
    )
    sup = supervisor(tmp_path, ChildSpec("deaf", python(deaf), 0), stop_deadline=1.0)
    sup.start()
    wait_until(lambda: grandchild_file.exists() and grandchild_file.read_text(), what="grandchild")
    pid, grandchild = sup.children[0].pid, int(grandchild_file.read_text())
    sup.stop()
    assert sup.children[0].last_exit == -9
    assert not pid_alive(pid)
    wait_until(lambda: not pid_alive(grandchild), timeout=5, what="the grandchild gone")


def test_idle_entries_are_listed_with_their_reason(tmp_path: Path) -> None:
    sup = supervisor(
        tmp_path, idle=[IdleEntry("n8n-workflows", "not configured", "set N8N_WEBHOOK_URL")]
    )
    sup.save()
    saved = read_state(tmp_path / "up.json")
    assert saved is not None
    assert [(r.name, r.state, r.note) for r in saved.processes] == [
        ("n8n-workflows", "not configured", "set N8N_WEBHOOK_URL")
    ]


@pytest.mark.parametrize("state", ["stopped", "running"])
def test_a_record_is_alive_only_while_its_process_runs_and_did_not_stop(state: str) -> None:
    rec = record()
    rec.state = state
    assert rec.alive is (state == "running")
    rec.pid = 2**22 + 12345  # above the default pid_max: no such process
    assert rec.alive is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_stop_when_the_supervisor_is_killed_without_a_chance_to_stop_them(
    tmp_path: Path,
) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from weavenn_cli.runtime.stack.supervisor import ChildSpec, Supervisor\n"
        "from weavenn_cli.runtime.stack.state import SupervisorRecord\n"
        "folder = Path(sys.argv[1])\n"
        "record = SupervisorRecord(0, 'starting', 0, 0, '', '', '', '')\n"
        "child = ChildSpec('sleeper', (sys.executable, '-c', 'import time; time.sleep(600)'), 0)\n"
        "sup = Supervisor([child], log_dir=folder, state_file=folder / 'up.json', record=record)\n"
        "sup.start()\n"
        "print(sup.children[0].pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert pid_alive(child)
    parent.kill()
    parent.wait(10)
    wait_until(lambda: not pid_alive(child), timeout=10, what="the orphan to stop")
