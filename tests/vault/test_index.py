"""`index_vault`: the cache built and repaired from the files, on both databases."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from tests.vault.conftest import write
from weavenn_cli.runtime.db.engine import session_scope
from weavenn_cli.runtime.vault import queries
from weavenn_cli.runtime.vault.cache import apply_event
from weavenn_cli.runtime.vault.files import PathFilter
from weavenn_cli.runtime.vault.index import index_vault

Factory = sessionmaker[Session]
FILTER = PathFilter(("*.md",), (".obsidian", ".*"))


def index(factory: Factory, vault: Path, progress=None):
    return index_vault(
        factory,
        vault,
        vault_id="test-vault",
        path_filter=FILTER,
        max_text_bytes=1000,
        progress=progress,
    )


def test_index_builds_the_cache_with_links_across_batches(sessions: Factory, vault: Path) -> None:
    for i in range(5):
        write(vault, f"n{i}.md", f"# Note {i}\n[[n{(i + 1) % 5}]] #batch")
    write(vault, ".obsidian/workspace.md", "ignored")
    calls: list[tuple[int, int]] = []
    summary = index_vault(
        sessions,
        vault,
        vault_id="v",
        path_filter=FILTER,
        max_text_bytes=None,
        progress=lambda done, total: calls.append((done, total)),
        batch_size=2,
    )
    assert (summary.scanned, summary.created, summary.relinked) == (5, 5, 0)
    assert calls == [(2, 5), (4, 5), (5, 5)]
    with sessions() as session:
        assert queries.stats(session) == queries.VaultStats(
            notes=5, tags=1, links=5, unresolved=0, orphans=0
        )


def test_index_repairs_drift(sessions: Factory, vault: Path) -> None:
    write(vault, "a.md", "[[b]]")
    write(vault, "b.md", "# B")
    write(vault, "c.md", "# C")
    index(sessions, vault)
    (vault / "b.md").unlink()
    write(vault, "sub/b.md", "# B moved by hand")
    write(vault, "c.md", "# C changed")
    summary = index(sessions, vault)
    assert (summary.created, summary.updated, summary.unchanged, summary.deleted) == (1, 1, 1, 1)
    with sessions() as session:
        note = queries.note_details(session, "a.md")
        assert note is not None and note.links[0].resolved_path == "sub/b.md"
        c = queries.note_details(session, "c.md")
        assert c is not None and c.title == "C changed"


def test_index_counts_parse_errors_and_keeps_going(sessions: Factory, vault: Path) -> None:
    write(vault, "bad.md", "---\n[: nope\n---\n# Still here")
    write(vault, "binary.md", b"\x00\x01\x02")
    summary = index(sessions, vault)
    assert summary.parse_errors == 2 and summary.created == 2


def test_a_queued_older_event_does_not_undo_the_index(
    sessions: Factory, vault: Path, make_event
) -> None:
    stale = make_event("vault.file.updated", "n.md", "# Stale", sequence=0)
    write(vault, "n.md", "# Current")
    index(sessions, vault)
    with session_scope(sessions) as session:
        assert apply_event(session, stale) is False
    with session_scope(sessions) as session:
        assert apply_event(session, make_event("vault.file.updated", "n.md", "# Newer", sequence=5))
    with sessions() as session:
        note = queries.note_details(session, "n.md")
        assert note is not None and note.title == "Newer"


def test_a_nul_spelled_in_yaml_frontmatter_is_stored_on_both_databases(
    sessions: Factory, vault: Path
) -> None:
    write(vault, "nul.md", '---\na: "x\\0y"\n"k\\0": 1\n---\n# Nul')
    summary = index(sessions, vault)
    assert summary.created == 1
    with sessions() as session:
        note = queries.note_details(session, "nul.md")
    assert note is not None and note.frontmatter == {"a": "x\ufffdy", "k\ufffd": 1}
