"""The agent rules without a database: the rules file, which tags, which mentions, and edits
that keep the rest of a note byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from weavenn_cli.runtime.agent import edit
from weavenn_cli.runtime.agent.engine import Agent
from weavenn_cli.runtime.agent.matching import CandidateIndex, find_mentions
from weavenn_cli.runtime.agent.rules import DEFAULT_RULES, Rules, load_rules, rules_path
from weavenn_cli.runtime.config import load_settings
from weavenn_cli.runtime.errors import ConfigError
from weavenn_cli.runtime.vault.cache import Resolver
from weavenn_cli.runtime.vault.parser import parse_note

RULES = Rules.model_validate(
    {
        "max_tags": 3,
        "folders": {"features": "type/feature", "projects/": ["type/project", "active"]},
        "keywords": {"kubernetes": "topic/k8s", "error budget": "topic/sre"},
    }
)


def agent(rules: Rules = RULES, max_tags: int | None = None, apply: bool = False) -> Agent:
    return Agent(rules, rules.max_tags if max_tags is None else max_tags, apply)


# -- the rules file --------------------------------------------------------------------------


def test_the_shipped_default_rules_load_and_are_inside_the_package() -> None:
    rules = load_rules(DEFAULT_RULES)
    assert rules.folders["features/"] == ["type/feature"]
    assert "weavenn_cli" in DEFAULT_RULES.parts and DEFAULT_RULES.is_file()


def test_rules_path_prefers_the_setting_then_the_vault_file_then_the_defaults(
    tmp_path: Path,
) -> None:
    vault = tmp_path / "vault"
    (vault / ".weavenn").mkdir(parents=True)
    assert rules_path(load_settings(None, vault_path=vault)) == DEFAULT_RULES
    (vault / ".weavenn" / "rules.yaml").write_text("max_tags: 1\n")
    assert rules_path(load_settings(None, vault_path=vault)) == vault / ".weavenn/rules.yaml"
    explicit = tmp_path / "mine.yaml"
    assert rules_path(load_settings(None, vault_path=vault, agent_rules_path=explicit)) == explicit


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("folders: [unclosed\n", "is not valid YAML (line 2)"),
        ("- a\n- b\n", "must be a mapping"),
        ("folders:\n  features/: has space\n", "folders"),
        ("max_tags: -1\n", "max_tags"),
        ("keyword:\n  k8s: x\n", "keyword: Extra inputs are not permitted"),
    ],
    ids=["bad-yaml", "not-a-mapping", "bad-tag", "negative-max", "unknown-key"],
)
def test_a_malformed_rules_file_is_one_config_error_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert message in caught.value.message
    assert str(path) in caught.value.message and "\n" not in caught.value.message


def test_a_missing_rules_file_named_by_the_setting_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_rules(tmp_path / "nope.yaml")


# -- which tags ------------------------------------------------------------------------------


def tags_for(path: str, text: str, **kw: object) -> list[str]:
    return agent(**kw).tags_to_add(path, parse_note(path, text.encode()))  # type: ignore[arg-type]


def test_folder_prefix_and_keywords_give_tags_in_rule_order() -> None:
    text = "# Deploy\nThe Kubernetes rollout spends the error   budget.\n"
    assert tags_for("Features/deploy.md", text) == ["type/feature", "topic/k8s", "topic/sre"]
    assert tags_for("features-old/deploy.md", "nothing") == []


def test_keywords_are_whole_words_outside_code_links_and_urls() -> None:
    text = (
        "kuberneteses and `kubernetes` and [[kubernetes]] and https://kubernetes.io and\n"
        "```\nkubernetes\n```\n"
    )
    assert tags_for("n.md", text) == []
    assert tags_for("n.md", "KUBERNETES!") == ["topic/k8s"]


def test_tags_already_there_are_not_added_and_count_against_the_maximum() -> None:
    text = "---\ntags: [Type/Feature]\n---\nkubernetes and error budget\n"
    assert tags_for("features/a.md", text, max_tags=2) == ["topic/k8s"]
    assert tags_for("features/a.md", text, max_tags=1) == []
    assert tags_for("features/a.md", "kubernetes, error budget", max_tags=0) == []


# -- edits keep the rest byte for byte ---------------------------------------------------------


PERSON_NOTE = (
    "---\r\n"
    "title:   My  Note   # odd spacing kept\r\n"
    "tags:\r\n"
    "    - mine\r\n"
    "    - 'quoted'\r\n"
    "\r\n"
    "date: 2024-01-02\r\n"
    "---\r\n"
    "Body with trailing spaces   \r\n"
    "kubernetes\r\n"
    "no newline at end"
)


def test_adding_tags_changes_only_the_tags_list_and_keeps_crlf() -> None:
    result = edit.add_tags(edit.split_note(PERSON_NOTE), ["topic/k8s"])
    assert result is not None
    rendered = result.render()
    before_lines = PERSON_NOTE.split("\r\n")
    after_lines = rendered.split("\r\n")
    assert after_lines == [*before_lines[:5], "    - topic/k8s", *before_lines[5:]]
    assert parse_note("a.md", rendered.encode()).tags == ["mine", "quoted", "topic/k8s"]


@pytest.mark.parametrize(
    ("front", "expected"),
    [
        ("tags: [a, b]\n", "tags: [a, b, x]\n"),
        ("tags: []\n", "tags: [x]\n"),
        ("tags:\n- a\n", "tags:\n- a\n- x\n"),
        ("tags: a, b\n", "tags: a, b, x\n"),
        ("tags:\n", "tags:\n  - x\n"),
        ("tags: 'a b' # mine\n", "tags:\n  - a\n  - b\n  - x\n"),
        ("tag: a\n", "tag: a, x\n"),
    ],
)
def test_tags_are_added_in_the_style_of_the_list(front: str, expected: str) -> None:
    text = f"---\ntitle: T\n{front}after: [1, 2]\n---\nbody\n"
    result = edit.add_tags(edit.split_note(text), ["x"])
    assert result is not None
    assert result.render() == f"---\ntitle: T\n{expected}after: [1, 2]\n---\nbody\n"


def test_a_frontmatter_without_tags_gets_a_tags_list_at_its_end() -> None:
    text = "---\ntitle: T\nother: 1\n---\nbody\n"
    result = edit.add_tags(edit.split_note(text), ["x"])
    assert result is not None
    assert result.render() == "---\ntitle: T\nother: 1\ntags:\n  - x\n---\nbody\n"


def test_a_note_without_frontmatter_gets_one_and_keeps_its_text_and_bom() -> None:
    text = "\ufeff# Title\n\ntext"
    result = edit.add_tags(edit.split_note(text), ["x"])
    assert result is not None
    assert result.render() == "\ufeff---\ntags:\n  - x\n---\n# Title\n\ntext"


def test_frontmatter_that_does_not_parse_is_not_touched() -> None:
    assert edit.add_tags(edit.split_note("---\ntitle: [x\n---\nbody\n"), ["x"]) is None
    assert edit.add_tags(edit.split_note("---\ntitle: x\nnever closed\n"), ["x"]) is None


def test_summary_is_one_yaml_line_added_never_replacing_one() -> None:
    text = "---\ntitle: T\n---\nbody\n"
    result = edit.set_summary(edit.split_note(text), "Plans: 'ship' it #now")
    assert result is not None
    assert parse_note("a.md", result.render().encode()).frontmatter["summary"] == (
        "Plans: 'ship' it #now"
    )
    assert result.render().endswith("---\nbody\n")
    assert edit.set_summary(edit.split_note("---\nsummary: mine\n---\n"), "x") is None


# -- mentions --------------------------------------------------------------------------------


NAMES = CandidateIndex.build(
    [
        ("ideas/graph-theory.md", "Graph Theory", ["graphs"]),
        ("Rollout.md", "Rollout", []),
        ("me.md", "Myself", []),
        ("a/Dup.md", "Shared", []),
        ("b/Dup2.md", "Shared", []),
        ("short.md", "Go", []),
    ],
    min_length=3,
)


def mentions(body: str, skip: set[str] | None = None) -> list[tuple[str, str, int]]:
    found = find_mentions(body, NAMES, skip_paths=skip or set())
    return [(m.candidate.path, body[m.start : m.end], m.count) for m in found]


def test_mentions_are_whole_words_any_case_longest_first_and_counted() -> None:
    body = "graph theory and GRAPH  THEORY; the rollout plan, rollouts, go, graphs.\n"
    assert mentions(body) == [
        ("ideas/graph-theory.md", "graph theory", 3),
        ("Rollout.md", "rollout", 1),
    ]


def test_mentions_skip_code_links_urls_tags_comments_self_and_ambiguous_names() -> None:
    body = (
        "`Rollout` [[Rollout]] [Rollout](x.md) https://x.org/Rollout #Rollout %%Rollout%%\n"
        "```\nRollout\n```\n<a title=Rollout> Shared Myself\n"
    )
    assert mentions(body, skip={"me.md"}) == []


def test_suggestion_scores_favour_longer_exact_repeated_names() -> None:
    found = {
        m.candidate.path: m for m in find_mentions("rollout. Graph Theory", NAMES, skip_paths=set())
    }
    assert found["ideas/graph-theory.md"].score() == 0.7  # two words, exact spelling
    assert found["Rollout.md"].score() == 0.4  # one word, other case


def test_apply_mode_links_the_first_mention_only_and_keeps_the_rest_byte_for_byte() -> None:
    text = "---\ntitle: Mine\n---\nOn graph theory:  Rollout then graph theory.\r\n"
    resolver = Resolver(["ideas/graph-theory.md", "Rollout.md", "mine.md"])
    result = agent(apply=True).run("mine.md", text.encode(), NAMES, resolver)
    assert result.content == (
        b"---\ntitle: Mine\n---\n"
        b"On [[graph-theory|graph theory]]:  [[Rollout]] then graph theory.\r\n"
    )
    assert result.rules == ["auto-link"] and result.suggestions == []


def test_apply_mode_escapes_the_pipe_of_a_link_in_a_table_row() -> None:
    text = "| topic | note |\n|---|---|\n| x | graph theory |\n"
    resolver = Resolver(["ideas/graph-theory.md", "mine.md"])
    result = agent(apply=True).run("mine.md", text.encode(), NAMES, resolver)
    assert (
        result.content == text.replace("graph theory", "[[graph-theory\\|graph theory]]").encode()
    )
    assert parse_note("mine.md", result.content).links[0].target == "graph-theory"


def test_a_note_tagged_no_auto_tag_is_left_alone() -> None:
    text = "---\ntags: [No-Auto-Tag]\n---\nkubernetes and Rollout\n"
    result = agent(apply=True).run("features/x.md", text.encode(), NAMES, Resolver(["Rollout.md"]))
    assert result.left_alone and result.content is None and result.suggestions == []


# -- settings ----------------------------------------------------------------------------------


def test_settings_choose_rules_max_tags_apply_mode_and_summaries(tmp_path: Path) -> None:
    from weavenn_cli.runtime.agent.claude import ClaudeSummarizer
    from weavenn_cli.runtime.consumers.agent_tasks import AgentTasksConsumer

    vault = tmp_path / "vault"
    vault.mkdir()
    default = AgentTasksConsumer.from_settings(load_settings(None, vault_path=vault))
    assert default.agent.max_tags == 3 and not default.agent.apply_links
    assert default.agent.summarizer is None
    tuned = AgentTasksConsumer.from_settings(
        load_settings(
            None,
            vault_path=vault,
            agent_max_tags=1,
            auto_link_apply=True,
            agent_summary=True,
            claude_api_key="k",
            claude_api_url="http://127.0.0.1:1",
        )
    )
    assert tuned.agent.max_tags == 1 and tuned.agent.apply_links
    assert isinstance(tuned.agent.summarizer, ClaudeSummarizer)
    assert tuned.agent.summarizer.url == "http://127.0.0.1:1/v1/messages"


def test_the_consumer_refuses_to_start_without_what_it_needs(tmp_path: Path) -> None:
    from weavenn_cli.runtime.consumers.agent_tasks import AgentTasksConsumer

    with pytest.raises(ConfigError, match=r"vault folder .* not found"):
        AgentTasksConsumer.from_settings(load_settings(None, vault_path=tmp_path / "none"))
    with pytest.raises(ConfigError, match="AGENT_SUMMARY=true needs CLAUDE_API_KEY"):
        AgentTasksConsumer.from_settings(
            load_settings(None, vault_path=tmp_path, agent_summary=True)
        )
