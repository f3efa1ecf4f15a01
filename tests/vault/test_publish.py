"""What one vault event carries, its message id, and the size caps."""

from __future__ import annotations

import json

from weavenn_cli.runtime.vault.publish import vault_event


def event(text: str | None, *, kind: str = "vault.file.updated", sequence: int = 1, **caps):
    return vault_event(
        vault_id="v",
        kind=kind,  # type: ignore[arg-type]
        path="n.md",
        sequence=sequence,
        content=None if text is None else text.encode(),
        max_text_bytes=caps.get("max_text_bytes", 1000),
        max_event_bytes=caps.get("max_event_bytes", 100_000),
    )


def test_the_event_carries_the_parsed_note_and_frontmatter() -> None:
    published = event("---\ntitle: T\n---\n[[x]] #t")
    assert published.frontmatter == {"title": "T"} and published.parse_error is None
    assert published.note is not None and published.note["tags"] == ["t"]
    assert "frontmatter" not in published.note and len(published.content_hash or "") == 64


def test_a_parse_error_travels_beside_an_empty_frontmatter() -> None:
    published = event("---\n[: bad\n---\nbody")
    assert published.frontmatter == {} and "invalid YAML" in (published.parse_error or "")


def test_note_text_above_the_text_cap_is_cut_and_flagged() -> None:
    published = event("x" * 5000, max_text_bytes=1000)
    assert published.note is not None
    assert len(published.note["text"]) == 1000 and published.note["text_truncated"] is True


def test_an_event_above_the_event_cap_carries_identity_only() -> None:
    links = " ".join(f"[[note {i}]]" for i in range(3000))
    published = event("# Big\n" + links, max_text_bytes=100, max_event_bytes=20_000)
    assert len(published.model_dump_json()) <= 20_000
    assert (
        published.note is not None
        and published.note["links"] == []
        and published.note["title"] == "Big"
    )
    assert "over MAX_EVENT_BYTES=20000" in (published.parse_error or "")
    assert published.content_hash is not None


def test_message_id_is_stable_for_the_same_change_and_new_for_a_new_one() -> None:
    assert event("A", sequence=1).message_id == event("A", sequence=1).message_id
    # A -> B -> A: the content is back, the change is new.
    assert event("A", sequence=1).message_id != event("A", sequence=3).message_id
    assert event("A", sequence=1).message_id != event("B", sequence=1).message_id


def test_a_delete_carries_no_note() -> None:
    published = event(None, kind="vault.file.deleted")
    assert published.note is None and published.content_hash is None
    assert json.loads(published.model_dump_json())["event_type"] == "vault.file.deleted"
