"""`weavenn migrate`: the database schema (alembic) and the move from SQLite to PostgreSQL."""

from __future__ import annotations

import typer

from weavenn_cli.commands._shared import get_settings, print_json, print_rows, stderr, stdout

app = typer.Typer(
    help="Schema migrations (alembic) and the SQLite → PostgreSQL move.", no_args_is_help=True
)

DATABASE_URL_OPTION = typer.Option(
    None, "--database-url", help="Database to act on (default: DATABASE_URL).", metavar="URL"
)


def _url(database_url: str | None) -> str:
    return database_url or get_settings().database_url


@app.command("db")
def db(
    revision: str = typer.Option("head", "--revision", help="Target revision.", metavar="REV"),
    sql: bool = typer.Option(False, "--sql", help="Print the SQL instead of running it."),
    database_url: str | None = DATABASE_URL_OPTION,
) -> None:
    """Upgrade the database schema to head (or to --revision)."""
    from weavenn_cli.runtime import schema
    from weavenn_cli.runtime.db.engine import describe_url

    url = _url(database_url)
    if sql:
        stdout.out(schema.upgrade(url, revision, sql=True) or "", end="")
        return
    with stderr.status(f"upgrading {describe_url(url)} to {revision}"):
        before = schema.current_revisions(url)
        schema.upgrade(url, revision)
        after = schema.current_revisions(url)
    stderr.print(f"{describe_url(url)}: {_revs(before)} → {_revs(after)}")


# "-1" is a revision, not an option.
@app.command("downgrade", context_settings={"ignore_unknown_options": True})
def downgrade(
    revision: str = typer.Argument(..., help="Target revision: an id, -1, or base."),
    sql: bool = typer.Option(False, "--sql", help="Print the SQL instead of running it."),
    database_url: str | None = DATABASE_URL_OPTION,
) -> None:
    """Downgrade the database schema to REVISION (e.g. -1, base, 002)."""
    from weavenn_cli.runtime import schema
    from weavenn_cli.runtime.db.engine import describe_url

    url = _url(database_url)
    if sql:
        stdout.out(schema.downgrade(url, revision, sql=True) or "", end="")
        return
    with stderr.status(f"downgrading {describe_url(url)} to {revision}"):
        before = schema.current_revisions(url)
        schema.downgrade(url, revision)
        after = schema.current_revisions(url)
    stderr.print(f"{describe_url(url)}: {_revs(before)} → {_revs(after)}")


@app.command("current")
def current(
    database_url: str | None = DATABASE_URL_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the revision the database is at, and whether it is the head."""
    from weavenn_cli.runtime import schema

    url = _url(database_url)
    revisions = schema.current_revisions(url)
    heads = schema.head_revisions()
    at_head = set(revisions) == set(heads)
    if as_json:
        print_json({"current": revisions, "heads": heads, "at_head": at_head})
        return
    state = "at head" if at_head else f"behind head {_revs(heads)}"
    stdout.print(f"{_revs(revisions)} ({state})")


@app.command("history")
def history(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List every schema revision, newest first."""
    from weavenn_cli.runtime import schema

    revisions = schema.history()
    if as_json:
        print_json([r.__dict__ for r in revisions])
        return
    print_rows(
        ("revision", "down", "description", ""),
        (
            (r.revision, r.down_revision or "base", r.message, "head" if r.is_head else "")
            for r in revisions
        ),
    )


@app.command("check")
def check(database_url: str | None = DATABASE_URL_OPTION) -> None:
    """Fail when the models and the migrations disagree, or when there is more than one head."""
    from weavenn_cli.runtime import schema

    result = schema.check(_url(database_url))
    if len(result.heads) > 1:
        stderr.print(
            f"[red]error:[/] {len(result.heads)} heads ({', '.join(result.heads)}): merge them"
        )
        raise typer.Exit(1)
    if result.differences:
        stderr.print("[red]error:[/] models and migrations disagree; add a revision for:")
        for difference in result.differences:
            stderr.print(f"  {difference}", markup=False)
        raise typer.Exit(1)
    stdout.print(f"models match migrations (head {result.heads[0]})")


def _revs(revisions: list[str]) -> str:
    return ", ".join(revisions) if revisions else "base"


def _register_data_commands() -> None:
    from weavenn_cli.commands import migrate_data

    app.command("backfill")(migrate_data.backfill)
    app.command("verify")(migrate_data.verify)
    app.command("status")(migrate_data.status)
    app.add_typer(migrate_data.dual_write_app, name="dual-write")


_register_data_commands()
