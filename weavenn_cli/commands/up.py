"""`weavenn up`: the whole local stack, supervised, with a live panel; `weavenn status`."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from weavenn_cli.commands._shared import exit_with, get_settings, print_json, state, stderr, stdout

if TYPE_CHECKING:
    from weavenn_cli.runtime.stack.probe import ProcessView, StackStatus

STATE_STYLES = {
    "running": "green",
    "restarting": "yellow",
    "stopping": "yellow",
    "stopped": "red",
    "disabled": "dim",
    "not configured": "dim",
}


def up(
    vault: Path | None = typer.Option(
        None, "--vault", help="Vault folder (default: VAULT_PATH).", metavar="PATH"
    ),
    demo: bool = typer.Option(
        False, "--demo", help="Fill an empty or missing vault with example notes, under git."
    ),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port of the API."),
    no_consumers: list[str] = typer.Option(
        [],
        "--no-consumers",
        help="Do not run these consumers (repeat, or comma-separated).",
        metavar="NAME",
    ),
) -> None:
    """Run the whole stack on this machine: API, watcher and relay, every consumer."""
    from weavenn_cli.runtime.stack import plan
    from weavenn_cli.runtime.stack.up import build_stack, run_stack

    settings = get_settings()
    chosen_vault = (vault or settings.vault_path).expanduser().resolve()
    plan.ensure_not_running()
    if demo:
        _fill_demo(chosen_vault)
    options = plan.StackOptions(
        vault=chosen_vault,
        port=port,
        skip_consumers=plan.parse_consumer_names(no_consumers),
        cli_options=_cli_options(),
    )
    stack = build_stack(settings, options)
    with stderr.status("bringing the database to the schema head"):
        plan.prepare_backends(settings)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    database = _database(settings.database_url)
    if stderr.is_terminal:
        from rich.live import Live

        with Live(console=stderr, refresh_per_second=4, transient=False) as live:
            run_stack(stack, stop, lambda status: live.update(render(status, database)))
    else:
        stderr.print(f"stack starting: API {stack.plan.api_url}, logs in {plan.LOG_DIR}/")
        run_stack(stack, stop, lambda _status: None)
    stderr.print("every process stopped")


def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """What `weavenn up` runs in this folder, once: processes, API, notes, events, last commit.

    Exit 1 when `up` is not running here (the counts are shown all the same).
    """
    from weavenn_cli.runtime.stack.up import current_status

    settings = get_settings()
    snapshot = current_status(settings)
    if as_json:
        print_json(snapshot.to_json())
    else:
        stdout.print(render(snapshot, _database(settings.database_url)))
    if not snapshot.running:
        stderr.print(
            "weavenn up is not running in this folder: start it with `weavenn up`", soft_wrap=True
        )
        exit_with(1)


def _fill_demo(vault: Path) -> None:
    from weavenn_cli.runtime.stack.demo import fill_demo_vault

    result = fill_demo_vault(vault)
    if not result.filled:
        stderr.print(f"[yellow]note:[/] {result.reason}", soft_wrap=True)
        return
    committed = f", committed as {result.commit[:7]}" if result.commit else ""
    stderr.print(f"demo vault: {result.notes} notes in {vault}{committed}", soft_wrap=True)
    if result.reason:
        stderr.print(f"[yellow]note:[/] {result.reason}", soft_wrap=True)


def _cli_options() -> tuple[str, ...]:
    """The global options this command got, for the children to get them too."""
    options: list[str] = []
    if state.env_file is not None:
        options += ["--env-file", str(state.env_file.resolve())]
    if state.debug:
        options.append("--debug")
    return tuple(options)


def _database(url: str) -> str:
    from weavenn_cli.runtime.config import mask_url

    return mask_url(url)


# -- the panel ----------------------------------------------------------------------------


def render(status: StackStatus, database: str) -> Panel:
    """The panel `up` keeps live and `status` prints once."""
    return Panel(
        Group(_process_table(status.processes), Text(""), _facts_table(status, database)),
        title=_title(status),
        title_align="left",
    )


def _title(status: StackStatus) -> str:
    if status.running:
        return f"weavenn up (pid {status.supervisor_pid}) · {status.state}"
    return "weavenn up · not running"


def _process_table(processes: list[ProcessView]) -> Table:
    table = Table(header_style="bold", expand=False, box=None, padding=(0, 2, 0, 0))
    for column in ("process", "state", "pid", "uptime", "restarts", "log / note"):
        table.add_column(column)
    for p in processes:
        table.add_row(
            Text(p.name),
            Text(_state_text(p), style=STATE_STYLES.get(p.state, "")),
            Text(str(p.pid) if p.pid else "—"),
            Text(_duration(p.uptime_seconds) if p.uptime_seconds is not None else "—"),
            Text(_restarts(p)),
            Text(p.note or (Path(p.log).name if p.log else "")),
        )
    return table


def _state_text(p: ProcessView) -> str:
    if p.state == "restarting" and p.restart_in_seconds is not None:
        return f"restarting in {p.restart_in_seconds:.0f}s"
    return p.state


def _restarts(p: ProcessView) -> str:
    if p.state in ("disabled", "not configured"):
        return ""
    last = f" (last exit {p.last_exit})" if p.restarts and p.last_exit is not None else ""
    return f"{p.restarts}{last}"


def _facts_table(status: StackStatus, database: str) -> Table:
    facts = status.facts
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    answers = "answers" if facts.api_answers else "not answering"
    table.add_row("API", Text(f"{status.api_url or '—'} ({answers})"))
    table.add_row("vault", Text(status.vault))
    table.add_row("last commit", Text(_commit(status)))
    table.add_row("database", Text(database))
    if status.transport:
        table.add_row("transport", Text(status.transport))
    table.add_row("notes indexed", Text(_count(facts.notes_indexed)))
    pending = (
        f"{_count(facts.events_pending)} "
        f"(outbox {_count(facts.outbox_pending)}, queues {_count(facts.queued)})"
    )
    if facts.idle_queued:
        pending += f"; {facts.idle_queued} more in queues of consumers not running"
    table.add_row("events pending", Text(pending))
    table.add_row("dead-lettered", Text(_count(facts.dead_letters)))
    if status.log_dir:
        table.add_row("logs", Text(f"{status.log_dir}/NAME.log (up.log: restarts and stops)"))
    for problem in facts.problems:
        table.add_row("note", Text(problem, style="yellow"))
    if status.running:
        table.add_row("", Text("Ctrl-C stops everything", style="dim"))
    return table


def _commit(status: StackStatus) -> str:
    commit = status.facts.last_commit
    if commit is None:
        return "—"
    return f"{commit.commit[:7]} {commit.message} ({commit.date})"


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
