"""`weavenn migrate backfill|verify|status|dual-write`: moving the data between databases.

Registered on the `migrate` group; thin: options, one runtime call, rich output.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from weavenn_cli.commands._shared import (
    get_settings,
    print_json,
    print_rows,
    stderr,
    stdout,
    styled_status,
)
from weavenn_cli.runtime.errors import WeavennError

if TYPE_CHECKING:
    from rich.progress import Task

    from weavenn_cli.runtime.migration.backfill import BackfillReport
    from weavenn_cli.runtime.migration.verify import VerifyReport

SOURCE_OPTION = typer.Option(
    None,
    "--source",
    help="Database to read (default: SECONDARY_DATABASE_URL, else the default SQLite file).",
    metavar="URL",
)
TARGET_OPTION = typer.Option(
    None, "--target", help="Database to write (default: DATABASE_URL).", metavar="URL"
)
TABLE_OPTION = typer.Option(
    None, "--table", help="Only this application table (repeatable; default: all).", metavar="T"
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")
SHOWN_KEYS = 20


class OnError(StrEnum):
    stop = "stop"
    skip = "skip"


def _endpoints(source: str | None, target: str | None) -> tuple[str, str]:
    settings = get_settings()
    return source or settings.secondary_or_default_url(), target or settings.database_url


class _RowRate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="cyan")


class _BackfillBar:
    """Rich progress per table: rows, rows/s, ETA (on stderr, data stays on stdout)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def table_started(self, table: str, total: int, done: int) -> None:
        self.tasks[table] = self.progress.add_task(table, total=max(total, done), completed=done)

    def rows_done(self, table: str, rows: int) -> None:
        self.progress.advance(self.tasks[table], rows)
        self.progress.refresh()

    def table_finished(self, table: str) -> None:
        task = self.tasks[table]
        self.progress.update(task, total=self.progress.tasks[task].completed)


def backfill(
    source: str | None = SOURCE_OPTION,
    target: str | None = TARGET_OPTION,
    table: list[str] | None = TABLE_OPTION,
    batch_size: int = typer.Option(10_000, "--batch-size", help="Rows per chunk.", metavar="N"),
    restart: bool = typer.Option(False, "--restart", help="Ignore checkpoints: start over."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan, write nothing."),
    on_error: OnError = typer.Option(
        OnError.skip, "--on-error", help="A row that cannot be written: skip it, or stop."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Copy the application tables from source to target: COPY speed, resumable, idempotent."""
    from weavenn_cli.runtime.migration import backfill as runtime
    from weavenn_cli.runtime.migration.tables import resolve_tables

    source_url, target_url = _endpoints(source, target)
    specs = resolve_tables(table)
    if dry_run:
        _print_plan(runtime.plan(source_url, target_url, specs), as_json)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RowRate(),
        TimeRemainingColumn(),
    )
    # Redrawn after each chunk, not by rich's refresh thread: a thread waking ten times a
    # second takes the GIL from the copy loop, which costs a busy machine dearly.
    with Progress(*columns, console=stderr, auto_refresh=False) as progress:
        report = runtime.backfill(
            source_url,
            target_url,
            specs,
            batch_size=batch_size,
            restart=restart,
            on_error=on_error.value,
            progress=_BackfillBar(progress),
        )
    _print_backfill(report, as_json)
    if report.rejected:
        stderr.print(
            f"[red]error:[/] {report.rejected} rows rejected: see table {report.reject_table} "
            f"in {report.target} (the reason is in each row)"
        )
        raise typer.Exit(1)


def _print_plan(entries: list[Any], as_json: bool) -> None:
    if as_json:
        print_json([entry.__dict__ for entry in entries])
        return
    print_rows(
        ("table", "source rows", "target rows", "resume after", "conversions", "existing rows"),
        (
            (
                e.table,
                e.source_rows,
                e.target_rows,
                e.resume_after or "start",
                "\n".join(e.conversions) or "none",
                e.on_conflict,
            )
            for e in entries
        ),
        title="backfill plan (nothing written)",
    )


def _print_backfill(report: BackfillReport, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "source": report.source,
                "target": report.target,
                "reject_table": report.reject_table,
                "tables": [outcome.__dict__ for outcome in report.tables],
            }
        )
        return
    print_rows(
        ("table", "read", "written", "skipped", "rejected", "time", "resumed after"),
        (
            (
                t.table,
                f"{t.read:,}",
                f"{t.written:,}",
                f"{t.skipped:,}",
                f"{t.rejected:,}",
                f"{t.seconds:.1f}s",
                f"{t.resumed_after:,}" if t.resumed_after else "",
            )
            for t in report.tables
        ),
        title=f"backfill {report.source} → {report.target}",
    )


def verify(
    source: str | None = SOURCE_OPTION,
    target: str | None = TARGET_OPTION,
    table: list[str] | None = TABLE_OPTION,
    where: str | None = typer.Option(
        None,
        "--where",
        help="Only rows matching this SQL condition (valid on both).",
        metavar="SQL",
    ),
    as_json: bool = JSON_OPTION,
    repair: bool = typer.Option(
        False, "--repair", help="Make the target equal to the source for the rows found."
    ),
    delete_extra: bool = typer.Option(
        False, "--delete-extra", help="With --repair: also delete rows only in the target."
    ),
) -> None:
    """Compare source and target row by row (exit 0 identical, 1 different, 2 error)."""
    from weavenn_cli.runtime.migration import verify as runtime
    from weavenn_cli.runtime.migration.tables import resolve_tables

    try:
        source_url, target_url = _endpoints(source, target)
        specs = resolve_tables(table)
        with stderr.status("comparing key ranges"):
            report = runtime.verify(
                source_url, target_url, specs, where=where, repair=repair, delete_extra=delete_extra
            )
    except WeavennError as error:
        error.exit_code = 2
        raise
    except Exception as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise WeavennError(f"verify failed: {reason}", exit_code=2) from error
    _print_verify(report, as_json)
    raise typer.Exit(0 if report.identical else 1)


def _print_verify(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    if report.first_pass is not None:
        _print_diffs(report.first_pass, f"before repair ({report.repaired} rows repaired)")
    _print_diffs(report.tables, f"verify {report.source} → {report.target}")
    stats = report.stats
    stderr.print(
        f"{stats.rows_sent_to_client:,} rows sent to the client, {stats.ranges_compared:,} "
        f"ranges compared, {stats.seconds:.1f}s"
    )
    verdict = (
        "[green]identical[/]" if report.identical else f"[red]{report.differences} differences[/]"
    )
    stdout.print(verdict)


def _print_diffs(tables: dict[str, Any], title: str) -> None:
    print_rows(
        ("table", "source rows", "target rows", "only in source", "only in target", "different"),
        (
            (
                name,
                f"{d.source_rows:,}",
                f"{d.target_rows:,}",
                len(d.missing_in_target),
                len(d.missing_in_source),
                len(d.different),
            )
            for name, d in tables.items()
        ),
        title=title,
    )
    for name, d in tables.items():
        lines = [f"only in source: {k}" for k in d.missing_in_target]
        lines += [f"only in target: {k}" for k in d.missing_in_source]
        lines += [
            f"different: {item['key']} ({', '.join(item['columns'])})" for item in d.different
        ]
        for line in lines[:SHOWN_KEYS]:
            stdout.print(f"  {name} {line}", markup=False)
        if len(lines) > SHOWN_KEYS:
            stdout.print(f"  {name}: {len(lines) - SHOWN_KEYS} more (use --json for all)")


def status(
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="Primary database, the one migrated to (default: DATABASE_URL).",
        metavar="URL",
    ),
    secondary_database_url: str | None = typer.Option(
        None,
        "--secondary-database-url",
        help="Secondary database, the one migrated from (default: SECONDARY_DATABASE_URL, "
        "else the default SQLite file).",
        metavar="URL",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """The migration timeline as a checklist, and the next step to take."""
    from weavenn_cli.runtime.migration.status import migration_status

    settings = get_settings()
    overrides = {"database_url": database_url, "secondary_database_url": secondary_database_url}
    given = {name: url for name, url in overrides.items() if url is not None}
    result = migration_status(settings.model_copy(update=given) if given else settings)
    if as_json:
        print_json(result.as_dict())
        return
    marks = {"ok": "ok", "todo": "warn", "fail": "fail", "info": "info"}
    print_rows(
        ("", "step", "state"),
        ((styled_status(marks[c.state]), c.item, c.detail) for c in result.checks),
        title="SQLite → PostgreSQL migration",
    )
    stdout.print(f"next step: {result.next_step}", markup=False)


dual_write_app = typer.Typer(
    help="Mirror task writes to the secondary database (on|off|status|replay).",
    no_args_is_help=True,
)


def _set_dual_write(enabled: bool) -> None:
    from weavenn_cli.runtime.db.engine import describe_url
    from weavenn_cli.runtime.migration.dual_write import FLAG_TTL_SECONDS, set_dual_write
    from weavenn_cli.runtime.migration.status import secondary_url

    settings = get_settings()
    urls = set_dual_write(settings.database_url, enabled, secondary_url(settings))
    state = "on" if enabled else "off"
    where = " and ".join(describe_url(url) for url in urls)
    stderr.print(
        f"dual-write {state} (flag in {where}; every process follows within "
        f"{FLAG_TTL_SECONDS * 2:.0f}s)"
    )


@dual_write_app.command("on")
def dual_write_on() -> None:
    """Start mirroring task writes to SECONDARY_DATABASE_URL."""
    _set_dual_write(True)


@dual_write_app.command("off")
def dual_write_off() -> None:
    """Stop mirroring task writes."""
    _set_dual_write(False)


@dual_write_app.command("status")
def dual_write_status(as_json: bool = JSON_OPTION) -> None:
    """Whether dual-write is on, and how many failed mirror writes wait for repair."""
    from weavenn_cli.runtime.migration.dual_write import dual_write_status as read_status

    settings = get_settings()
    result = read_status(settings.database_url, settings.dual_write_enabled)
    if as_json:
        print_json(result.as_dict())
        return
    origin = "runtime flag" if result.from_database else "DUAL_WRITE_ENABLED (flag never set)"
    print_rows(
        ("dual-write", "pending failures", "decided by"),
        [("on" if result.enabled else "off", result.pending_failures, origin)],
    )


@dual_write_app.command("replay")
def dual_write_replay() -> None:
    """Re-apply failed mirror writes from the current rows of the database that served them."""
    from weavenn_cli.runtime.migration.dual_write import replay_both_ways
    from weavenn_cli.runtime.migration.status import secondary_url

    settings = get_settings()
    with stderr.status("replaying failed dual-writes"):
        result = replay_both_ways(settings.database_url, secondary_url(settings))
    stdout.print(f"{result.replayed} rows replayed")
    if result.failed:
        raise WeavennError(f"replay stopped: {result.error}; fix that database and run it again")
