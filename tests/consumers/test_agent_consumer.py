"""The agent-tasks consumer on both databases, fed the events the watcher publishes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.consumers.agent_rig import AgentRig
from weavenn_cli.runtime.consumers.agent_tasks import AgentTasksConsumer
from weavenn_cli.runtime.consumers.base import PermanentError
from weavenn_cli.runtime.vault.parser import content_hash, parse_note

PERSON_TEXT = (
    "---\n"
    "title: Deploy plan\n"
    "tags:\n"
    "  - mine\n"
    "  - Kept/Nested\n"
    "owner:  me   # a comment\n"
    "---\n"
    "We run the Kubernetes rollout here.  \n"
    "```\nkubernetes in code\n```\n"
    "Trailing text without newline"
)


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    root.mkdir()
    return root


@pytest.fixture
def rig(any_migrated_url: str, vault: Path) -> Iterator[AgentRig]:
    harness = AgentRig(any_migrated_url, vault)
    yield harness
    harness.close()


def test_consumer_contract_matches_the_topology() -> None:
    assert (AgentTasksConsumer.name, AgentTasksConsumer.queue) == ("agent-tasks", "agent_tasks")
    assert AgentTasksConsumer.bindings == ("vault.file.created", "vault.file.updated", "task.*")


def test_one_edit_gets_its_tags_in_exactly_one_write_back_and_its_event_changes_nothing(
    rig: AgentRig,
) -> None:
    rig.deliver(rig.save("features/deploy.md", PERSON_TEXT))
    written = rig.read("features/deploy.md")
    assert parse_note("x", written).tags == [
        "mine",
        "Kept/Nested",
        "type/feature",
        "topic/kubernetes",
        "topic/rollout",
    ]
    assert rig.writebacks() == [
        ("features/deploy.md", content_hash(written), "auto-tag"),
    ]
    events_before = rig.outbox_count()

    rig.deliver(rig.observe("features/deploy.md"))  # the write-back comes back as an event

    assert rig.read("features/deploy.md") == written
    assert len(rig.writebacks()) == 1
    assert rig.outbox_count() == events_before


def test_a_write_back_keeps_everything_but_the_tags_list_byte_for_byte(rig: AgentRig) -> None:
    rig.deliver(rig.save("features/deploy.md", PERSON_TEXT))
    written = rig.read("features/deploy.md").decode()
    added = "  - type/feature\n  - topic/kubernetes\n  - topic/rollout\n"
    cut = PERSON_TEXT.index("owner:")
    assert written == PERSON_TEXT[:cut] + added + PERSON_TEXT[cut:]


def test_the_next_edit_by_a_person_runs_the_rules_again_and_never_removes_their_tags(
    rig: AgentRig,
) -> None:
    rig.deliver(rig.save("features/deploy.md", PERSON_TEXT))
    rig.deliver(rig.observe("features/deploy.md"))
    edited = rig.read("features/deploy.md").decode().replace("  - topic/rollout\n", "")
    rig.deliver(rig.save("features/deploy.md", edited))
    tags = parse_note("x", rig.read("features/deploy.md")).tags
    assert tags[:2] == ["mine", "Kept/Nested"] and "topic/rollout" in tags
    # The same bytes as the first write-back: one version, recorded once.
    assert len(rig.writebacks()) == 1
    assert len(rig.published("vault.metadata.tags_updated")) == 2


def test_tags_updated_is_published_with_the_write_back(rig: AgentRig) -> None:
    event = rig.save("features/deploy.md", PERSON_TEXT)
    rig.deliver(event)
    [published] = rig.published("vault.metadata.tags_updated")
    assert published["file_path"] == "features/deploy.md"
    assert published["tags_added"] == ["type/feature", "topic/kubernetes", "topic/rollout"]
    assert published["content_hash"] == content_hash(rig.read("features/deploy.md"))
    assert published["source_message_id"] == event.message_id
    assert published["rules"] == ["auto-tag"]


def test_no_auto_tag_leaves_the_note_alone(rig: AgentRig) -> None:
    text = "---\ntags: [no-auto-tag]\n---\nkubernetes rollout\n"
    rig.deliver(rig.save("features/quiet.md", text))
    assert rig.read("features/quiet.md") == text.encode()
    assert rig.writebacks() == [] and rig.published() == []


def test_max_tags_from_the_setting_limits_the_tags_a_note_gets(
    any_migrated_url: str, vault: Path
) -> None:
    rig = AgentRig(any_migrated_url, vault)
    rig.consumer.agent = type(rig.consumer.agent)(rig.consumer.agent.rules, 1)
    try:
        rig.deliver(rig.save("features/deploy.md", PERSON_TEXT))
        assert parse_note("x", rig.read("features/deploy.md")).tags == [
            "mine",
            "Kept/Nested",
            "type/feature",
        ]
    finally:
        rig.close()


def test_mentions_become_suggestions_replaced_on_each_run(rig: AgentRig) -> None:
    rig.save("ideas/Graph Theory.md", "# Graph Theory\n")
    rig.save("Rollout.md", "---\naliases: [release train]\n---\n# Rollout\n")
    rig.deliver(rig.save("n.md", "graph theory, the release train and graph theory.\n"))
    found = [(s.target_path, s.mention, s.score) for s in rig.suggestions("n.md")]
    # Two words, other case, twice: 0.6 + 0.05; two words, exact alias: 0.6 + 0.1 - 0.05.
    assert found == [
        ("Rollout.md", "release train", 0.65),
        ("ideas/Graph Theory.md", "graph theory", 0.65),
    ]
    assert rig.read("n.md") == b"graph theory, the release train and graph theory.\n"
    [links] = rig.published("vault.metadata.links_updated")
    assert {s["target_path"] for s in links["suggestions"]} == {
        "ideas/Graph Theory.md",
        "Rollout.md",
    }

    rig.deliver(rig.save("n.md", "Only [[Rollout]] and the release train now.\n"))
    assert rig.suggestions("n.md") == []
    assert len(rig.published("vault.metadata.links_updated")) == 2


def test_apply_mode_links_the_first_mention_and_publishes_links_updated(
    any_migrated_url: str, vault: Path
) -> None:
    rig = AgentRig(any_migrated_url, vault, apply_links=True)
    try:
        rig.save("ideas/graph-theory.md", "---\ntitle: Graph Theory\n---\n")
        text = "---\nkeep: 1\n---\nGraph Theory, `graph theory`, graph theory.\n"
        rig.deliver(rig.save("n.md", text))
        assert rig.read("n.md") == (
            b"---\nkeep: 1\n---\n[[graph-theory|Graph Theory]], `graph theory`, graph theory.\n"
        )
        [links] = rig.published("vault.metadata.links_updated")
        assert links["links_applied"] == [
            {
                "target_path": "ideas/graph-theory.md",
                "mention": "Graph Theory",
                "link": "[[graph-theory|Graph Theory]]",
            }
        ]
        assert rig.writebacks()[0][2] == "auto-link"
        rig.deliver(rig.observe("n.md"))
        assert len(rig.writebacks()) == 1
    finally:
        rig.close()


def test_a_note_changed_since_its_event_is_skipped(rig: AgentRig, vault: Path) -> None:
    event = rig.save("features/deploy.md", PERSON_TEXT)
    (vault / "features/deploy.md").write_text("newer save\n")
    rig.deliver(event)
    assert rig.read("features/deploy.md") == b"newer save\n"
    assert rig.writebacks() == [] and rig.published() == []


def test_a_save_that_lands_while_the_rules_run_is_not_overwritten(
    any_migrated_url: str, vault: Path
) -> None:
    class SavesMeanwhile:
        """Stands in for a slow summary while a person saves the note."""

        def summarize(self, title: str, text: str) -> str:
            (vault / "features/deploy.md").write_text("the person's newer save\n")
            return "a summary"

    rig = AgentRig(any_migrated_url, vault, summarizer=SavesMeanwhile())
    try:
        rig.deliver(rig.save("features/deploy.md", PERSON_TEXT))
        assert rig.read("features/deploy.md") == b"the person's newer save\n"
        assert rig.writebacks() == [] and rig.published() == []
    finally:
        rig.close()


def test_a_note_that_is_a_symlink_out_of_the_vault_is_refused_for_good(
    rig: AgentRig, vault: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text(PERSON_TEXT)
    (vault / "features").mkdir()
    (vault / "features/escape.md").symlink_to(outside)
    with pytest.raises(PermanentError, match="outside the vault"):
        rig.deliver(rig.observe("features/escape.md", "vault.file.created"))
    assert outside.read_text() == PERSON_TEXT


def test_task_events_are_acknowledged_without_effect(rig: AgentRig) -> None:
    body = {
        "message_id": "t1",
        "event_type": "task.created",
        "task_id": "1",
        "project_id": "p",
    }
    rig.deliver(body, routing_key="task.created")
    assert rig.outbox_count() == 0


def test_an_event_without_content_hash_is_a_permanent_error(rig: AgentRig) -> None:
    body = {
        "message_id": "m",
        "event_type": "vault.file.updated",
        "file_path": "a.md",
        "vault_id": "v",
    }
    with pytest.raises(PermanentError, match="no content hash"):
        rig.deliver(body)
