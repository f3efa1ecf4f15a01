"""`weavenn vault`: the shadow cache of the vault (index, note, search, stats, orphans)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from weavenn_cli.commands._shared import (
    get_settings,
    make_table,
    print_json,
    print_rows,
    stderr,
    stdout,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

app = typer.Typer(
    help="The shadow cache of the vault: index it, look up notes, search, stats.",
    no_args_is_help=True,
)

VAULT_OPTION = typer.Option(
    None, "--vault", help="Vault folder (default: VAULT_PATH).", metavar="PATH"
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")


def _print_rows(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
) -> None:
    """Rows of note data: brackets in titles and links are text, not rich markup."""
    print_rows(
        columns,
        ([escape(str(cell)) for cell in row] for row in rows),
        title=escape(title or "") or None,
    )


def _sessions() -> sessionmaker[Session]:
    from weavenn_cli.runtime.vault.database import vault_sessions

    return vault_sessions(get_settings().database_url)


@app.command("index")
def index(vault: Path | None = VAULT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Build or repair the cache from the vault files directly, without the bus."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from weavenn_cli.runtime.vault.files import PathFilter, resolve_vault
    from weavenn_cli.runtime.vault.index import index_vault

    settings = get_settings()
    root = resolve_vault(vault or settings.vault_path)
    factory = _sessions()
    columns = (TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task("index", total=None)
        summary = index_vault(
            factory,
            root,
            vault_id=settings.vault_id,
            path_filter=PathFilter.from_settings(settings),
            max_text_bytes=settings.max_note_text_bytes,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if as_json:
        print_json(summary.__dict__)
        return
    _print_rows(
        (
            "notes",
            "created",
            "updated",
            "unchanged",
            "deleted",
            "links re-resolved",
            "parse errors",
        ),
        [
            (
                summary.scanned,
                summary.created,
                summary.updated,
                summary.unchanged,
                summary.deleted,
                summary.relinked,
                summary.parse_errors,
            )
        ],
    )
    for path in summary.unreadable:
        stderr.print(f"[yellow]warning:[/] could not read {path}", markup=True)


@app.command("note")
def note(
    path: str = typer.Argument(..., help="Vault-relative path of the note (.md may be left out)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Everything the cache knows about one note: metadata, headings, links, backlinks."""
    from weavenn_cli.runtime.errors import WeavennError
    from weavenn_cli.runtime.vault.files import user_note_path
    from weavenn_cli.runtime.vault.queries import cached_note_path, note_details

    relative = user_note_path(path, get_settings().vault_path)
    with _sessions()() as session:
        details = note_details(session, cached_note_path(session, relative))
    if details is None:
        raise WeavennError(
            f"{relative} is not in the cache: check the path, or run `weavenn vault index`"
        )
    if as_json:
        print_json(details.model_dump(mode="json"))
        return
    summary = make_table("field", "value", title=escape(details.path))
    for field, value in (
        ("title", details.title),
        ("type", details.node_type or ""),
        ("tags", ", ".join(details.tags)),
        ("aliases", ", ".join(details.aliases)),
        ("frontmatter", ", ".join(f"{k}: {v}" for k, v in details.frontmatter.items())),
        ("content hash", details.content_hash),
        ("size", f"{details.size} bytes" + (" (text truncated)" if details.text_truncated else "")),
        ("indexed", details.indexed_at.isoformat(timespec="seconds")),
        ("parse error", details.parse_error or ""),
    ):
        summary.add_row(field, escape(str(value)))
    stdout.print(summary)
    if details.headings:
        _print_rows(
            ("line", "heading"),
            ((h.line, "#" * h.level + " " + h.text) for h in details.headings),
            title="headings",
        )
    if details.links:
        _print_rows(
            ("target", "fragment", "alias", "embed", "resolves to"),
            (
                (
                    link.target or "(this note)",
                    link.heading or (f"^{link.block}" if link.block else ""),
                    link.alias or "",
                    "yes" if link.embed else "",
                    link.resolved_path or link.status,
                )
                for link in details.links
            ),
            title="links",
        )
    _print_rows(
        ("from", "title", "links"),
        ((b.path, b.title, b.links) for b in details.backlinks),
        title=f"backlinks ({len(details.backlinks)})",
    )


@app.command("search")
def search(
    query: str | None = typer.Argument(None, help='Words, "a phrase", OR, -word.'),
    tag: str | None = typer.Option(
        None, "--tag", help="Only notes with this tag (or nested).", metavar="TAG"
    ),
    limit: int = typer.Option(20, "--limit", help="At most this many results.", metavar="N"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Full-text search of the cached notes, best match first."""
    from weavenn_cli.runtime.vault import queries

    with _sessions()() as session:
        hits = queries.search(session, query, tag=tag, limit=limit)
    if as_json:
        print_json([hit.model_dump() for hit in hits])
        return
    _print_rows(
        ("path", "title", "score", "snippet"),
        ((h.path, h.title, f"{h.score:.3g}", " ".join(h.snippet.split())) for h in hits),
    )


@app.command("stats")
def stats(as_json: bool = JSON_OPTION) -> None:
    """Counts: notes, tags, links, unresolved links, orphans."""
    from weavenn_cli.runtime.vault import queries

    with _sessions()() as session:
        result = queries.stats(session)
    if as_json:
        print_json(result.model_dump())
        return
    _print_rows(
        ("notes", "tags", "links", "unresolved links", "orphans"),
        [tuple(result.model_dump().values())],
    )


@app.command("orphans")
def orphans(
    limit: int | None = typer.Option(None, "--limit", help="At most this many.", metavar="N"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Notes with no link to or from another note."""
    from weavenn_cli.runtime.vault import queries

    with _sessions()() as session:
        paths = queries.orphans(session, limit)
    if as_json:
        print_json(paths)
        return
    _print_rows(("orphan",), ((p,) for p in paths))


@app.command("suggestions")
def suggestions(
    path: str = typer.Argument(..., help="Vault-relative path of the note (.md may be left out)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Links agent-tasks suggests for a note: mentions of other notes, best score first."""
    from weavenn_cli.runtime.agent.store import suggestions_for
    from weavenn_cli.runtime.vault.files import user_note_path
    from weavenn_cli.runtime.vault.queries import cached_note_path

    relative = user_note_path(path, get_settings().vault_path)
    with _sessions()() as session:
        found = cached_note_path(session, relative)
        rows = suggestions_for(session, found)
    if as_json:
        print_json([row.model_dump() for row in rows])
        return
    print_rows(
        ("target", "title", "mention", "score"),
        ((r.target_path, r.target_title, r.mention, f"{r.score:.2f}") for r in rows),
        title=f"{found}: {len(rows)} link suggestions",
    )
