"""`weavenn vault ...` through the installed command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.vault.conftest import write


@pytest.fixture
def env(vault: Path, migrated_sqlite_url: str) -> dict[str, str]:
    write(
        vault,
        "Index.md",
        "---\ntags: [hub]\naliases: [Home]\n---\n# Index\n## Part\n"
        "[[Topic#Part|the topic]] ![[pic.png]] [[Nowhere]]",
    )
    write(vault, "notes/Topic.md", "# Topic\nAll about kubernetes rollouts. [[Index]]")
    write(vault, "notes/Lonely [draft].md", "# Lonely [draft]\nnothing")
    return {"DATABASE_URL": migrated_sqlite_url, "VAULT_PATH": str(vault)}


def test_index_then_note_shows_everything_the_cache_knows(run_weavenn, env: dict[str, str]) -> None:
    result = run_weavenn("vault", "index", env=env)
    assert result.returncode == 0, result.stderr
    assert "3" in result.stdout
    result = run_weavenn("vault", "note", "Index", "--json", env=env)
    assert result.returncode == 0, result.stderr
    note = json.loads(result.stdout)
    assert (note["path"], note["title"], note["tags"], note["aliases"]) == (
        "Index.md",
        "Index",
        ["hub"],
        ["Home"],
    )
    assert [
        (
            link["target"],
            link["status"],
            link["resolved_path"],
            link["heading"],
            link["alias"],
            link["embed"],
        )
        for link in note["links"]
    ] == [
        ("Topic", "resolved", "notes/Topic.md", "Part", "the topic", False),
        ("pic.png", "attachment", None, None, None, True),
        ("Nowhere", "unresolved", None, None, None, False),
    ]
    assert note["backlinks"] == [{"path": "notes/Topic.md", "title": "Topic", "links": 1}]
    assert len(note["content_hash"]) == 64 and note["indexed_at"]
    table = run_weavenn("vault", "note", "notes/Lonely [draft].md", env=env)
    assert table.returncode == 0 and "Lonely [draft]" in table.stdout


def test_search_and_stats_as_json(run_weavenn, env: dict[str, str]) -> None:
    assert run_weavenn("vault", "index", env=env).returncode == 0
    hits = json.loads(run_weavenn("vault", "search", "kubernetes", "--json", env=env).stdout)
    assert [hit["path"] for hit in hits] == ["notes/Topic.md"]
    tagged = json.loads(run_weavenn("vault", "search", "--tag", "hub", "--json", env=env).stdout)
    assert [hit["path"] for hit in tagged] == ["Index.md"]
    stats = json.loads(run_weavenn("vault", "stats", "--json", env=env).stdout)
    assert stats == {"notes": 3, "tags": 1, "links": 4, "unresolved": 1, "orphans": 1}
    orphans = json.loads(run_weavenn("vault", "orphans", "--json", env=env).stdout)
    assert orphans == ["notes/Lonely [draft].md"]


def test_index_on_postgresql(run_weavenn, vault: Path, migrated_pg_url: str) -> None:
    write(vault, "a.md", "# A\n[[b]] about postgres")
    write(vault, "b.md", "# B")
    env = {"DATABASE_URL": migrated_pg_url, "VAULT_PATH": str(vault)}
    assert run_weavenn("vault", "index", "--json", env=env).returncode == 0
    hits = json.loads(run_weavenn("vault", "search", "postgres", "--json", env=env).stdout)
    assert [hit["path"] for hit in hits] == ["a.md"]


@pytest.mark.parametrize("path", ["../secret.md", "notes/../../x.md", "/etc/passwd"])
def test_paths_outside_the_vault_are_refused(run_weavenn, env: dict[str, str], path: str) -> None:
    result = run_weavenn("vault", "note", path, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "outside the vault" in lines[0]


def test_an_absolute_path_inside_the_vault_is_accepted(run_weavenn, env: dict[str, str]) -> None:
    assert run_weavenn("vault", "index", env=env).returncode == 0
    result = run_weavenn(
        "vault", "note", str(Path(env["VAULT_PATH"]) / "notes" / "Topic.md"), env=env
    )
    assert result.returncode == 0, result.stderr
    assert "Topic" in result.stdout


def test_a_note_not_in_the_cache_is_an_error(run_weavenn, env: dict[str, str]) -> None:
    result = run_weavenn("vault", "note", "nope.md", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: nope.md is not in the cache")


def test_an_unmigrated_database_says_what_to_run(run_weavenn, vault: Path, sqlite_url: str) -> None:
    result = run_weavenn("vault", "stats", env={"DATABASE_URL": sqlite_url})
    assert result.returncode == 1
    assert "run `weavenn migrate db` first" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_vault_folder_is_bad_usage(
    run_weavenn, migrated_sqlite_url: str, tmp_path: Path
) -> None:
    result = run_weavenn(
        "vault",
        "index",
        "--vault",
        str(tmp_path / "none"),
        env={"DATABASE_URL": migrated_sqlite_url},
    )
    assert result.returncode == 2
    assert "vault folder" in result.stderr and "not found" in result.stderr


def test_search_without_words_or_tag_is_bad_usage(run_weavenn, env: dict[str, str]) -> None:
    result = run_weavenn("vault", "search", env=env)
    assert result.returncode == 2 and "give words to search for" in result.stderr
