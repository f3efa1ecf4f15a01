"""Search, stats and orphans of the cache, on SQLite (FTS5) and PostgreSQL (tsvector)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from weavenn_cli.runtime.db.engine import session_scope
from weavenn_cli.runtime.errors import UsageError
from weavenn_cli.runtime.vault import queries
from weavenn_cli.runtime.vault.cache import apply_event
from weavenn_cli.runtime.vault.queries import to_fts5_query

Factory = sessionmaker[Session]


@pytest.fixture
def small_vault(sessions: Factory, make_event) -> Factory:
    notes = {
        "Kubernetes.md": "---\ntags: [infra/k8s]\n---\n# Kubernetes rollout\nDeployments and pods.",
        "Notes/Ops.md": "# Operations\nWe mention kubernetes once. #infra [[Kubernetes]]",
        "Cooking.md": "# Bread\nFlour, water, salt. #food [[Missing recipe]]",
        "Alone.md": "# Alone\nNothing links here, it links nowhere.",
    }
    with session_scope(sessions) as session:
        for path, text in notes.items():
            apply_event(session, make_event("vault.file.created", path, text))
    return sessions


def run_search(factory: Factory, query: str | None, **kw) -> list[queries.SearchHit]:
    with factory() as session:
        return queries.search(session, query, **kw)


def test_search_ranks_a_title_match_above_a_passing_mention(small_vault: Factory) -> None:
    hits = run_search(small_vault, "kubernetes")
    assert [h.path for h in hits] == ["Kubernetes.md", "Notes/Ops.md"]
    assert hits[0].score > hits[1].score
    assert "**" in hits[0].snippet or "**" in hits[1].snippet


def test_search_needs_every_word_and_honours_phrases_or_and_exclusion(small_vault: Factory) -> None:
    assert [h.path for h in run_search(small_vault, "flour salt")] == ["Cooking.md"]
    assert run_search(small_vault, "flour pods") == []
    assert {h.path for h in run_search(small_vault, "flour OR pods")} == {
        "Cooking.md",
        "Kubernetes.md",
    }
    assert [h.path for h in run_search(small_vault, '"kubernetes rollout"')] == ["Kubernetes.md"]
    assert [h.path for h in run_search(small_vault, "kubernetes -pods")] == ["Notes/Ops.md"]


def test_search_by_tag_includes_nested_tags(small_vault: Factory) -> None:
    assert [h.path for h in run_search(small_vault, None, tag="infra")] == [
        "Kubernetes.md",
        "Notes/Ops.md",
    ]
    assert [h.path for h in run_search(small_vault, "kubernetes", tag="#INFRA/k8s")] == [
        "Kubernetes.md"
    ]


def test_search_limit(small_vault: Factory) -> None:
    assert len(run_search(small_vault, "kubernetes", limit=1)) == 1


def test_search_input_with_operators_is_plain_text(small_vault: Factory) -> None:
    assert run_search(small_vault, 'NEAR( "unbalanced AND * ^') == []


def test_search_without_words_or_tag_is_bad_usage(small_vault: Factory) -> None:
    with pytest.raises(UsageError):
        run_search(small_vault, "  ")
    with pytest.raises(UsageError):
        run_search(small_vault, "*** ---")


def test_fts5_query_translation() -> None:
    assert to_fts5_query('a "b c" OR d -e') == '("a" AND "b c") OR ("d") NOT "e"'


def test_stats_count_notes_tags_links_unresolved_and_orphans(small_vault: Factory) -> None:
    with small_vault() as session:
        result = queries.stats(session)
        assert result == queries.VaultStats(notes=4, tags=3, links=2, unresolved=1, orphans=2)
        assert queries.orphans(session) == ["Alone.md", "Cooking.md"]
