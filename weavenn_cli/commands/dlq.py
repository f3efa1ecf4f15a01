"""`weavenn dlq`: dead letters, with the error that killed them; replay or purge them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from weavenn_cli.commands._shared import print_json, print_rows, stderr, stdout
from weavenn_cli.runtime.errors import UsageError

if TYPE_CHECKING:
    from weavenn_cli.runtime.bus.deadletters import DeadLetters
    from weavenn_cli.runtime.bus.transport import Transport
    from weavenn_cli.runtime.db.models import DeadLetter

app = typer.Typer(
    help="Dead letters: list, show, replay to their queue, purge.", no_args_is_help=True
)

QUEUE_OPTION = typer.Option(None, "--queue", help="Only dead letters of this queue.")


def _open() -> tuple[DeadLetters, Transport]:
    """The dead letters table, with whatever RabbitMQ's dlq queue holds moved into it."""
    from weavenn_cli.commands.bus import open_bus
    from weavenn_cli.runtime.bus.deadletters import DeadLetters

    engine, transport = open_bus()
    transport.collect_dead_letters()
    return DeadLetters(engine), transport


@app.command("list")
def list_(
    queue: str | None = QUEUE_OPTION,
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Dead letters, oldest first: queue, routing key, attempts, when, and the error."""
    store, transport = _open()
    transport.close()
    rows = store.list(queue, limit)
    if as_json:
        print_json([_summary(row) for row in rows])
        return
    print_rows(
        ("id", "queue", "routing key", "message id", "attempts", "failed at", "error"),
        (
            (
                row.id,
                row.queue or "?",
                row.routing_key,
                row.message_id,
                row.attempts,
                f"{row.failed_at:%Y-%m-%d %H:%M:%S}",
                _one_line(row.error, 80),
            )
            for row in rows
        ),
    )
    stderr.print(f"{len(rows)} dead letter(s)")


@app.command("show")
def show(
    dead_letter_id: int = typer.Argument(..., metavar="ID", help="Id from `weavenn dlq list`."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One dead letter in full: error, attempts, headers and body."""
    store, transport = _open()
    transport.close()
    row = store.get(dead_letter_id)
    detail = {**_summary(row), "headers": row.headers or {}, "body": _body(row.body)}
    if as_json:
        print_json(detail)
        return
    for key in (
        "id",
        "queue",
        "consumer",
        "routing_key",
        "message_id",
        "correlation_id",
        "attempts",
        "failed_at",
    ):
        stdout.print(f"[bold]{key}:[/] {escape(str(detail[key]))}", highlight=False)
    stdout.print(f"[bold]error:[/] {escape(row.error or '')}", highlight=False)
    stdout.print("[bold]headers:[/]")
    stdout.print_json(data=detail["headers"])
    stdout.print("[bold]body:[/]")
    body = detail["body"]
    if isinstance(body, str):
        stdout.out(body)
    else:
        stdout.print_json(data=body)


@app.command("replay")
def replay(
    ids: list[int] | None = typer.Argument(None, metavar="ID...", help="Dead letters to replay."),
    replay_all: bool = typer.Option(False, "--all", help="Replay every dead letter."),
    queue: str | None = QUEUE_OPTION,
) -> None:
    """Send dead letters back to the queue they died in, as a first attempt."""
    if bool(ids) == replay_all:
        raise UsageError("give dead letter ids or --all (not both)")
    if queue and ids:
        raise UsageError("--queue goes with --all, not with ids")
    from rich.progress import Progress

    store, transport = _open()
    try:
        with Progress(console=stderr, transient=True) as progress:
            task = progress.add_task("replaying", total=None)
            result = store.replay(
                transport,
                ids=ids or None,
                queue=queue,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    finally:
        transport.close()
    stdout.print(f"replayed {len(result.replayed)} dead letter(s) to {transport.describe()}")
    if result.missing:
        raise UsageError(f"no dead letter with id {', '.join(map(str, result.missing))}")


@app.command("purge")
def purge(
    ids: list[int] | None = typer.Argument(None, metavar="[ID...]", help="Only these."),
    queue: str | None = QUEUE_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete dead letters for good (all, those of --queue, or the ids given)."""
    store, transport = _open()
    transport.close()
    what = (
        f"dead letters {', '.join(map(str, ids))}"
        if ids
        else (f"every dead letter of {queue}" if queue else "every dead letter")
    )
    if not yes:
        if not stderr.is_terminal:
            raise UsageError(f"refusing to delete {what} without --yes")
        typer.confirm(f"Delete {what}?", abort=True, err=True)
    deleted = store.purge(ids or None, queue)
    stdout.print(f"purged {deleted} dead letter(s)")


def _summary(row: DeadLetter) -> dict[str, Any]:
    return {
        "id": row.id,
        "queue": row.queue,
        "consumer": row.consumer,
        "routing_key": row.routing_key,
        "message_id": row.message_id,
        "correlation_id": row.correlation_id,
        "attempts": row.attempts,
        "failed_at": row.failed_at.isoformat(),
        "error": row.error,
    }


def _body(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _one_line(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
