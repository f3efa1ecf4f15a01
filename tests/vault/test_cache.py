"""Applying vault events to the shadow cache, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from weavenn_cli.runtime.db.engine import session_scope
from weavenn_cli.runtime.db.models import Note, NoteHeading, NoteLink, NoteTag, NoteVersion
from weavenn_cli.runtime.vault import queries
from weavenn_cli.runtime.vault.cache import Resolver, apply_event, apply_events
from weavenn_cli.runtime.vault.parser import Link

Factory = sessionmaker[Session]


def apply(factory: Factory, *events) -> list[bool]:
    results = []
    for event in events:
        with session_scope(factory) as session:
            results.append(apply_event(session, event))
    return results


def details(factory: Factory, path: str) -> queries.NoteDetails | None:
    with factory() as session:
        return queries.note_details(session, path)


def resolved(factory: Factory, path: str) -> dict[str, str | None]:
    note = details(factory, path)
    assert note is not None, f"{path} not in the cache"
    return {link.target: link.resolved_path for link in note.links}


def test_created_note_is_cached_with_its_metadata(sessions: Factory, make_event) -> None:
    text = "---\ntype: concept\naliases: [Alt]\n---\n# Title\n## Part\n#tag [[Other#Part|see]]"
    assert apply(sessions, make_event("vault.file.created", "a/Note.md", text)) == [True]
    note = details(sessions, "a/Note.md")
    assert note is not None
    assert (note.title, note.node_type, note.aliases, note.tags) == (
        "Title",
        "concept",
        ["Alt"],
        ["tag"],
    )
    assert [(h.level, h.text) for h in note.headings] == [(1, "Title"), (2, "Part")]
    link = note.links[0]
    assert (link.target, link.heading, link.alias, link.status) == (
        "Other",
        "Part",
        "see",
        "unresolved",
    )
    assert len(note.content_hash) == 64 and note.frontmatter == {
        "type": "concept",
        "aliases": ["Alt"],
    }


def test_update_replaces_tags_links_and_headings(sessions: Factory, make_event) -> None:
    apply(sessions, make_event("vault.file.created", "n.md", "# One\n#old [[x]] [[y]]"))
    apply(sessions, make_event("vault.file.updated", "n.md", "# Two\n#new [[z]]"))
    note = details(sessions, "n.md")
    assert note is not None and note.title == "Two" and note.tags == ["new"]
    assert [link.target for link in note.links] == ["z"]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(NoteLink)) == 1
        assert session.scalar(select(func.count()).select_from(NoteHeading)) == 1


def test_delete_removes_the_note_and_its_rows(sessions: Factory, make_event) -> None:
    apply(sessions, make_event("vault.file.created", "n.md", "# T\n#t [[x]]"))
    apply(sessions, make_event("vault.file.deleted", "n.md"))
    assert details(sessions, "n.md") is None
    with sessions() as session:
        for model in (Note, NoteTag, NoteLink, NoteHeading):
            assert session.scalar(select(func.count()).select_from(model)) == 0


def test_backlinks_list_the_notes_linking_here(sessions: Factory, make_event) -> None:
    apply(
        sessions,
        make_event("vault.file.created", "target.md", "# Target\n[[#Self]]"),
        make_event("vault.file.created", "a.md", "[[target]] and [[target#H]]"),
        make_event("vault.file.created", "b.md", "![[Target]]"),
    )
    note = details(sessions, "target.md")
    assert note is not None
    assert [(b.path, b.links) for b in note.backlinks] == [("a.md", 2), ("b.md", 1)]


def test_unresolved_link_resolves_when_its_target_appears(sessions: Factory, make_event) -> None:
    apply(sessions, make_event("vault.file.created", "a.md", "[[Later]]"))
    assert resolved(sessions, "a.md") == {"Later": None}
    apply(sessions, make_event("vault.file.created", "deep/Later.md", "hello"))
    assert resolved(sessions, "a.md") == {"Later": "deep/Later.md"}


def test_deleting_a_target_falls_back_to_a_namesake_or_unresolved(
    sessions: Factory, make_event
) -> None:
    apply(
        sessions,
        make_event("vault.file.created", "x/Same.md", "one"),
        make_event("vault.file.created", "x/y/Same.md", "two"),
        make_event("vault.file.created", "a.md", "[[Same]]"),
    )
    assert resolved(sessions, "a.md") == {"Same": "x/Same.md"}
    apply(sessions, make_event("vault.file.deleted", "x/Same.md"))
    assert resolved(sessions, "a.md") == {"Same": "x/y/Same.md"}
    apply(sessions, make_event("vault.file.deleted", "x/y/Same.md"))
    assert resolved(sessions, "a.md") == {"Same": None}


def test_links_to_a_moved_note_resolve_to_its_new_path(sessions: Factory, make_event) -> None:
    apply(
        sessions,
        make_event("vault.file.created", "old/Topic.md", "# Topic\n[[#Intro]]"),
        make_event("vault.file.created", "a.md", "[[Topic]] [[old/Topic#Intro]]"),
    )
    apply(
        sessions,
        make_event(
            "vault.file.moved", "new/Renamed.md", "# Topic\n[[#Intro]]", old_path="old/Topic.md"
        ),
    )
    assert details(sessions, "old/Topic.md") is None
    assert resolved(sessions, "a.md") == {"Topic": "new/Renamed.md", "old/Topic": "new/Renamed.md"}
    moved = details(sessions, "new/Renamed.md")
    assert moved is not None and [b.path for b in moved.backlinks] == ["a.md"]
    assert moved.links[0].resolved_path == "new/Renamed.md"  # its own local link moved too


def test_a_move_re_resolves_links_that_name_the_new_path(sessions: Factory, make_event) -> None:
    apply(
        sessions,
        make_event("vault.file.created", "a.md", "[[Fresh]]"),
        make_event("vault.file.created", "draft.md", "x"),
        make_event("vault.file.moved", "Fresh.md", "x", old_path="draft.md"),
    )
    assert resolved(sessions, "a.md") == {"Fresh": "Fresh.md"}


def test_resolution_prefers_exact_path_then_own_folder_then_shortest() -> None:
    resolver = Resolver(["Note.md", "a/Note.md", "a/b/Note.md", "z/Other.md", "q/r/Other.md"])
    link = Link(target="Note")
    assert resolver.resolve("a/b/source.md", link) == "Note.md"  # exact vault path
    assert resolver.resolve("a/b/source.md", Link(target="b/Note")) == "a/b/Note.md"  # own folder
    assert resolver.resolve("top.md", Link(target="Other")) == "z/Other.md"  # shortest path
    assert resolver.resolve("x/y.md", Link(target="r/other")) == "q/r/Other.md"  # case and suffix
    assert resolver.resolve("a/b/s.md", Link(target="../Note.md")) == "a/Note.md"  # relative
    assert resolver.resolve("s.md", Link(target="Nowhere")) is None


def test_an_older_event_never_overwrites_newer_state(sessions: Factory, make_event) -> None:
    created = make_event("vault.file.created", "n.md", "# v1")
    updated = make_event("vault.file.updated", "n.md", "# v2")
    assert apply(sessions, updated, created) == [True, False]
    note = details(sessions, "n.md")
    assert note is not None and note.title == "v2"


def test_a_delete_is_remembered_so_an_older_update_does_not_resurrect(
    sessions: Factory, make_event
) -> None:
    updated = make_event("vault.file.updated", "n.md", "# v1")
    deleted = make_event("vault.file.deleted", "n.md")
    recreated = make_event("vault.file.created", "n.md", "# v3")
    assert apply(sessions, deleted, updated) == [True, False]
    assert details(sessions, "n.md") is None
    assert apply(sessions, recreated) == [True]
    assert details(sessions, "n.md") is not None


def test_the_same_event_twice_changes_nothing(sessions: Factory, make_event) -> None:
    event = make_event("vault.file.created", "n.md", "# T\n[[x]]")
    assert apply(sessions, event, event) == [True, False]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(NoteLink)) == 1


def test_a_move_delivered_after_a_newer_update_of_its_target(sessions: Factory, make_event) -> None:
    apply(sessions, make_event("vault.file.created", "old.md", "# Old"))
    moved = make_event("vault.file.moved", "new.md", "# Old", old_path="old.md")
    updated = make_event("vault.file.updated", "new.md", "# Newest")
    assert apply(sessions, updated, moved) == [True, True]
    assert details(sessions, "old.md") is None
    note = details(sessions, "new.md")
    assert note is not None and note.title == "Newest"


def _cache_state(factory: Factory) -> dict[str, tuple]:
    with factory() as session:
        notes = session.execute(select(Note.id, Note.path, Note.title, Note.content_hash)).all()
        by_id = {note.id: note.path for note in notes}
        links = session.execute(
            select(NoteLink.note_id, NoteLink.position, NoteLink.target, NoteLink.resolved_path)
        ).all()
        tags = session.execute(select(NoteTag.note_id, NoteTag.tag)).all()
    state: dict[str, tuple] = {n.path: (n.title, n.content_hash, [], []) for n in notes}
    for link in sorted(links, key=lambda row: row.position):
        state[by_id[link.note_id]][2].append((link.target, link.resolved_path))
    for tag in tags:
        state[by_id[tag.note_id]][3].append(tag.tag)
    return {path: (t, h, links, sorted(tags)) for path, (t, h, links, tags) in state.items()}


def test_a_batch_of_events_leaves_the_cache_as_applying_them_one_by_one(
    sessions: Factory, make_event
) -> None:
    """Runs of creates and updates go in at once; a repeated path, a delete or a move in the
    middle keeps its place in the order."""
    events = [
        make_event("vault.file.created", "a.md", "# A\n[[b]] [[c]] #one"),
        make_event("vault.file.created", "b.md", "# B\n[[a]] [[gone]]"),
        make_event("vault.file.created", "gone.md", "# Gone"),
        make_event("vault.file.updated", "a.md", "# A2\n[[b]] [[new]] #two"),
        make_event("vault.file.created", "c.md", "# C\n[[new]]"),
        make_event("vault.file.deleted", "gone.md"),
        make_event("vault.file.created", "dir/new.md", "# New\n[[a]]"),
        make_event("vault.file.moved", "dir/b.md", "# B\n[[a]] [[gone]]", old_path="b.md"),
        make_event("vault.file.created", "d.md", "# D\n[[b]] [[dir/b]]"),
    ]
    with session_scope(sessions) as session:
        assert apply_events(session, events) == [True] * len(events)
    state = _cache_state(sessions)
    with session_scope(sessions) as session:
        for model in (NoteLink, NoteTag, NoteHeading, Note, NoteVersion):
            session.execute(delete(model))
    assert apply(sessions, *events) == [True] * len(events)
    assert state == _cache_state(sessions)
    assert state["d.md"][2] == [("b", "dir/b.md"), ("dir/b", "dir/b.md")]
    assert "gone.md" not in state and state["a.md"][0] == "A2"


def test_a_batch_skips_events_older_than_the_cache(sessions: Factory, make_event) -> None:
    old = make_event("vault.file.created", "n.md", "# Old")
    new = make_event("vault.file.updated", "n.md", "# New")
    other = make_event("vault.file.created", "o.md", "# Other")
    apply(sessions, new)
    with session_scope(sessions) as session:
        assert apply_events(session, [old, other]) == [False, True]
    assert details(sessions, "n.md").title == "New"  # type: ignore[union-attr]


def test_batches_on_postgres_resolve_late_links_and_refresh_statistics(
    migrated_pg_url: str, make_event
) -> None:
    """1,200 notes in batches of 300, each linking to the next one (stored in a later batch):
    every link resolves once its target arrives, names with quotes, backslashes and accents
    included (they travel in JSON arrays); and the planner has statistics of the tables by the
    end, though autovacuum had no time to analyze them."""
    from sqlalchemy import text

    from weavenn_cli.runtime.db.engine import make_engine, session_factory

    def name(number: int) -> str:
        return f'n{number} "q\\é'

    count = 1200
    events = [
        make_event("vault.file.created", f"d{n % 7}/{name(n)}.md", f"# T\n[[{name(n + 1)}]]")
        for n in range(count)
    ]
    engine = make_engine(migrated_pg_url)
    factory = session_factory(engine)
    try:
        for start in range(0, count, 300):
            with session_scope(factory) as session:
                assert apply_events(session, events[start : start + 300]) == [True] * 300
        with factory() as session:
            unresolved = session.scalars(
                select(NoteLink.target).where(NoteLink.resolved_path.is_(None))
            ).all()
            analyzed = session.scalars(
                text(
                    "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
                    "AND relname IN ('notes', 'note_links')"
                )
            ).all()
        assert unresolved == [name(count)]
        assert sorted(analyzed) == ["note_links", "notes"]
        assert resolved(factory, f"d3/{name(10)}.md") == {name(11): f"d4/{name(11)}.md"}
    finally:
        engine.dispose()
