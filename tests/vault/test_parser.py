"""The parser against Obsidian's syntax, one edge case per test."""

from __future__ import annotations

from weavenn_cli.runtime.events import VaultFileEvent
from weavenn_cli.runtime.vault.parser import Link, parse_note


def parse(text: str, path: str = "folder/Note name.md"):
    return parse_note(path, text.encode("utf-8"))


def targets(text: str) -> list[str]:
    return [link.target for link in parse(text).links]


# -- frontmatter -------------------------------------------------------------------------


def test_frontmatter_tags_as_a_list() -> None:
    note = parse("---\ntags: [project, '#idea', area/work]\n---\nbody")
    assert note.tags == ["project", "idea", "area/work"]


def test_frontmatter_tags_as_a_block_list() -> None:
    note = parse("---\ntags:\n  - one\n  - two\n---\n")
    assert note.tags == ["one", "two"]


def test_frontmatter_tags_as_a_string_with_commas_or_spaces() -> None:
    assert parse("---\ntags: alpha, beta\n---\n").tags == ["alpha", "beta"]
    assert parse("---\ntags: 'alpha beta #gamma'\n---\n").tags == ["alpha", "beta", "gamma"]


def test_frontmatter_aliases_as_list_or_string_and_type() -> None:
    note = parse("---\naliases: [First, Second]\ntype: concept\n---\n")
    assert note.aliases == ["First", "Second"] and note.node_type == "concept"
    assert parse("---\naliases: One, Two\n---\n").aliases == ["One", "Two"]


def test_frontmatter_values_become_json_values() -> None:
    note = parse("---\ncreated: 2024-03-01\nscore: .nan\n1: numeric key\n---\n")
    assert note.frontmatter == {"created": "2024-03-01", "score": "nan", "1": "numeric key"}


def test_malformed_frontmatter_is_empty_with_the_error_recorded() -> None:
    note = parse("---\ntitle: [unclosed\n---\n# Heading\n#tag")
    assert note.frontmatter == {}
    assert note.errors and note.errors[0].startswith("frontmatter: invalid YAML")
    assert note.title == "Heading" and note.tags == ["tag"]


def test_frontmatter_that_is_not_a_mapping_is_empty_with_an_error() -> None:
    note = parse("---\n- just\n- a list\n---\nbody")
    assert note.frontmatter == {} and "expected key: value pairs" in note.errors[0]


def test_unclosed_frontmatter_is_read_as_text() -> None:
    note = parse("---\ntitle: x\n# Real heading")
    assert note.frontmatter == {} and note.title == "Real heading"
    assert "never closed" in note.errors[0]


def test_yaml_alias_bomb_is_refused_not_expanded() -> None:
    bomb = "---\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefg":
        previous = ", ".join([f"*{chr(ord(level) - 1)}"] * 10)
        bomb += f"{level}: &{level} [{previous}]\n"
    note = parse(bomb + "---\n")
    assert note.frontmatter == {} and "values once expanded" in note.errors[0]


# -- tags ------------------------------------------------------------------------------


def test_inline_tags_with_unicode_letters_digits_underscore_and_dash() -> None:
    note = parse("Notes #café #日本語 #snake_case #kebab-case #v2")
    assert note.tags == ["café", "日本語", "snake_case", "kebab-case", "v2"]


def test_decomposed_accents_stay_inside_the_tag() -> None:
    assert parse("#cafe\u0301 here").tags == ["café"]


def test_nested_tags_keep_their_slashes() -> None:
    assert parse("#project/alpha/phase-1").tags == ["project/alpha/phase-1"]


def test_a_tag_needs_at_least_one_non_digit() -> None:
    assert parse("#123 #2024 #2024/10 #1st").tags == ["1st"]


def test_tags_compare_without_case_first_spelling_wins() -> None:
    assert parse("---\ntags: [Project]\n---\n#project #PROJECT").tags == ["Project"]


def test_no_tags_inside_code_fences() -> None:
    assert parse("```bash\n#notatag\n```\n~~~\n#nope\n~~~\n#yes").tags == ["yes"]


def test_an_unclosed_code_fence_runs_to_the_end() -> None:
    assert parse("#before\n```\n#inside").tags == ["before"]


def test_no_tags_inside_inline_code() -> None:
    assert parse("run `grep #notatag` and ``#double`` then #real").tags == ["real"]


def test_no_tags_inside_obsidian_comments() -> None:
    assert parse("%% #hidden %% #shown %%\nmulti\n#line\n%%").tags == ["shown"]


def test_no_tags_inside_html_comments() -> None:
    assert parse("<!-- #hidden\n#also -->#not-after-comment #shown").tags == ["shown"]


def test_no_tags_inside_urls() -> None:
    assert parse("see https://example.com/page #real and http://x.org/#frag").tags == ["real"]


def test_no_tags_inside_wikilinks() -> None:
    assert parse("[[Note #not-a-tag]] #tag").tags == ["tag"]


def test_no_tags_inside_words() -> None:
    assert parse("C#sharp foo#bar issue#12 #ok").tags == ["ok"]


def test_tags_at_the_start_of_the_text_and_after_any_whitespace() -> None:
    assert parse("#first\tafter-tab\t#second\n#third x#no").tags == ["first", "second", "third"]


def test_inline_code_with_a_backtick_inside_a_longer_run() -> None:
    assert parse("``a`b #no`` #yes `#no` #also").tags == ["yes", "also"]


def test_a_heading_is_not_a_tag_but_a_tag_in_a_heading_is() -> None:
    note = parse("# Title #inhead\n#tagline")
    assert note.tags == ["inhead", "tagline"]
    assert [h.text for h in note.headings] == ["Title #inhead"]


# -- links -----------------------------------------------------------------------------


def test_plain_wikilink() -> None:
    assert parse("[[Target note]]").links == [Link(target="Target note")]


def test_wikilink_with_alias() -> None:
    assert parse("[[Target|shown text]]").links == [Link(target="Target", alias="shown text")]


def test_wikilink_to_a_heading() -> None:
    assert parse("[[Target#Some heading]]").links == [Link(target="Target", heading="Some heading")]


def test_wikilink_to_a_block() -> None:
    assert parse("[[Target#^abc123]]").links == [Link(target="Target", block="abc123")]


def test_wikilink_to_a_local_heading() -> None:
    link = parse("[[#Local heading]]").links[0]
    assert link.target == "" and link.heading == "Local heading" and link.target_kind == "heading"


def test_embeds_of_notes_and_attachments() -> None:
    links = parse("![[Other note]] ![[diagram.png]]").links
    assert [(lnk.target, lnk.embed, lnk.target_kind) for lnk in links] == [
        ("Other note", True, "note"),
        ("diagram.png", True, "attachment"),
    ]


def test_an_embed_needs_the_bang_right_before_the_brackets() -> None:
    links = parse("![md](first.md) ! [[spaced]] ![[embedded]] x![[glued]]").links
    assert [(lnk.target, lnk.embed) for lnk in links] == [
        ("first.md", True),
        ("spaced", False),
        ("embedded", True),
        ("glued", True),
    ]


def test_escaped_pipe_of_a_wikilink_in_a_table() -> None:
    assert parse("| [[Target\\|alias]] |").links == [Link(target="Target", alias="alias")]


def test_markdown_links_to_notes() -> None:
    links = parse("[a](Other%20note.md) [b](sub/page#Part) [c](<with space.md>)").links
    assert [(lnk.target, lnk.heading, lnk.kind) for lnk in links] == [
        ("Other note.md", None, "markdown"),
        ("sub/page", "Part", "markdown"),
        ("with space.md", None, "markdown"),
    ]


def test_markdown_links_to_the_web_or_to_images_are_not_note_links() -> None:
    text = "[w](https://example.com/a.md) [m](mailto:a@b.c) ![i](pic.png) [o](obsidian://open)"
    assert parse(text).links == []


def test_no_links_inside_code_or_comments() -> None:
    assert targets("`[[a]]`\n```\n[[b]]\n```\n%% [[c]] %%\n<!-- [[d]] -->\n[[e]]") == ["e"]


def test_links_keep_document_order() -> None:
    assert targets("[md](first.md) then [[second]] then [x](third)") == [
        "first.md",
        "second",
        "third",
    ]


# -- headings and title -------------------------------------------------------------------


def test_headings_with_level_and_line() -> None:
    note = parse("---\na: 1\n---\n# One\ntext\n### Three ###\n####### seven is text\n")
    assert [(h.level, h.text, h.line) for h in note.headings] == [(1, "One", 4), (3, "Three", 6)]


def test_no_headings_inside_code_fences() -> None:
    assert parse("```\n# comment in code\n```\n## Real").headings[0].text == "Real"


def test_title_is_frontmatter_title_first() -> None:
    assert parse("---\ntitle: From frontmatter\n---\n# From heading").title == "From frontmatter"


def test_title_is_the_first_h1_next() -> None:
    assert parse("## Second level\n# First H1\n# Second H1").title == "First H1"


def test_title_is_the_file_name_last() -> None:
    assert parse("just text", path="deep/folder/My file.md").title == "My file"


# -- bytes that are not clean UTF-8 Markdown ------------------------------------------------


def test_non_utf8_text_is_decoded_with_replacements_and_an_error() -> None:
    note = parse_note("latin1.md", "caf\xe9 #tag".encode("latin-1"))
    assert note.tags == ["tag"] and "\ufffd" in note.text
    assert note.errors[0].startswith("not valid UTF-8")


def test_binary_content_is_not_parsed() -> None:
    note = parse_note("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR#tag")
    assert note.tags == [] and note.text == "" and note.title == "image"
    assert note.errors == ["binary content: not parsed"]


def test_windows_line_endings_and_a_byte_order_mark() -> None:
    note = parse_note("w.md", "\ufeff---\r\ntitle: T\r\n---\r\n# H\r\n#tag\r\n".encode())
    assert note.title == "T" and note.tags == ["tag"] and note.headings[0].text == "H"


def test_text_is_cut_at_the_byte_cap_on_a_character_boundary() -> None:
    note = parse_note("big.md", ("é" * 100).encode(), max_text_bytes=51)
    assert note.text == "é" * 25 and note.text_truncated


def test_the_result_travels_in_an_event() -> None:
    note = parse("---\ntags: [a]\n---\n# T\n[[x#^b|y]] #c")
    event = VaultFileEvent(
        message_id="m",
        event_type="vault.file.created",
        file_path="n.md",
        vault_id="v",
        note=note.model_dump(mode="json"),
    )
    again = VaultFileEvent.model_validate_json(event.model_dump_json())
    assert type(note).model_validate(again.note) == note
