"""The shadow cache of notes (composite keys, generated ids) through backfill and verify."""

from __future__ import annotations

import json
import sqlite3

from tests.migration.conftest import pg_query, sqlite_path
from weavenn_cli.runtime.migration import backfill, verify
from weavenn_cli.runtime.migration.tables import resolve_tables

NOTES = 150
STAMP = "2024-03-01 12:00:00.000000"
CACHE = ["notes", "note_tags", "note_headings", "note_links", "note_versions", "published_files"]


def _fill_cache(url: str) -> None:
    with sqlite3.connect(sqlite_path(url)) as connection:
        for i in range(1, NOTES + 1):
            path = f"notes/Note {i} ✓.md"
            frontmatter = json.dumps({"tags": ["a", "b"], "z": i, "a": {"nested": True}})
            connection.execute(
                "INSERT INTO notes (id, path, name_key, title, node_type, frontmatter, aliases,"
                " body, body_truncated, size, content_hash, parse_error, indexed_at)"
                " VALUES (?, ?, ?, ?, NULL, ?, '[]', ?, 0, ?, ?, NULL, ?)",
                (i * 3, path, f"note {i}", f"Note {i}", frontmatter, f"Body [[Note {i + 1}]]",
                 100 + i, f"{i:064x}", STAMP),
            )  # fmt: skip
            for tag in ("Project", "status/open", "ünïcode"):
                connection.execute(
                    "INSERT INTO note_tags VALUES (?, ?, ?)", (i * 3, tag.lower(), tag)
                )
            connection.execute(
                "INSERT INTO note_headings VALUES (?, 0, 1, ?, 1)", (i * 3, f"Heading {i}")
            )
            connection.execute(
                "INSERT INTO note_links (note_id, position, target, heading, block, alias, embed,"
                " kind, target_kind, target_name, resolved_path)"
                " VALUES (?, 0, ?, NULL, NULL, '', 0, 'wikilink', 'note', ?, NULL)",
                (i * 3, f"Note {i + 1}", f"note {i + 1}"),
            )
            connection.execute("INSERT INTO note_versions VALUES (?, ?, 0, ?)", (path, i, STAMP))
            connection.execute(
                "INSERT INTO published_files VALUES ('vault', ?, ?, ?, ?)",
                (path, f"{i:064x}", i, STAMP),
            )


def test_cache_tables_round_trip_with_composite_keys_and_sequences(
    migrated_sqlite_url, migrated_pg_url
) -> None:
    _fill_cache(migrated_sqlite_url)
    specs = resolve_tables(CACHE)
    report = backfill.backfill(migrated_sqlite_url, migrated_pg_url, specs, batch_size=100)
    assert {t.table: t.written for t in report.tables} == {
        "notes": NOTES, "note_tags": 3 * NOTES, "note_headings": NOTES,
        "note_links": NOTES, "note_versions": NOTES, "published_files": NOTES,
    }  # fmt: skip
    assert verify.verify(migrated_sqlite_url, migrated_pg_url, specs).identical

    # The ids came from SQLite: PostgreSQL's next generated id follows them.
    (new_id,) = pg_query(
        migrated_pg_url,
        "INSERT INTO notes (path, name_key, title, frontmatter, aliases, body, body_truncated,"
        " size, content_hash, indexed_at) VALUES ('new.md', 'new', 'New', '{}', '[]', '',"
        " false, 0, '', now()) RETURNING id",
    )[0]
    assert new_id > 3 * NOTES

    pg_query(migrated_pg_url, "DELETE FROM notes WHERE path = 'new.md'")
    pg_query(
        migrated_pg_url,
        "UPDATE note_tags SET tag = 'PROJECT' WHERE note_id = 30 AND tag_key = 'project'",
    )
    pg_query(migrated_pg_url, "DELETE FROM note_tags WHERE note_id = 300 AND tag_key = 'project'")
    pg_query(
        migrated_pg_url,
        "UPDATE notes SET frontmatter = frontmatter || '{\"z\": 0}' WHERE id = 9",
    )
    found = verify.verify(migrated_sqlite_url, migrated_pg_url, specs)
    tags, notes = found.tables["note_tags"], found.tables["notes"]
    assert tags.different == [{"key": [30, "project"], "columns": ["tag"]}]
    assert tags.missing_in_target == [[300, "project"]]
    assert notes.different == [{"key": 9, "columns": ["frontmatter"]}]
    assert found.differences == 3

    repaired = verify.verify(migrated_sqlite_url, migrated_pg_url, specs, repair=True)
    assert repaired.identical and repaired.repaired == 3
