"""The agent rules applied to one version of one note: what to add, what to suggest.

Pure computation on the note's bytes plus the vault's names (and the summarizer's answer):
the consumer around it reads the file, records the result and writes the file back.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from weavenn_cli.runtime.agent import edit
from weavenn_cli.runtime.agent.matching import (
    CandidateIndex,
    Mention,
    find_mentions,
    has_phrase,
    visible_text,
)
from weavenn_cli.runtime.agent.rules import NO_AUTO_TAG, Rules
from weavenn_cli.runtime.vault.cache import Resolver
from weavenn_cli.runtime.vault.parser import ParsedNote, parse_note

log = logging.getLogger(__name__)

AUTO_TAG = "auto-tag"
AUTO_LINK = "auto-link"
SUMMARY = "summary"
# Characters a wikilink's alias cannot hold as written.
_NOT_IN_ALIAS = set("[]|#^")


class Summarizer(Protocol):
    def summarize(self, title: str, text: str) -> str: ...


@dataclass
class Result:
    """What the rules did to (or found in) the note."""

    content: bytes | None = None  # the new version, when the note changes
    rules: list[str] = field(default_factory=list)  # rules that changed it
    tags_added: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # every tag of the resulting note
    summary: str | None = None
    links_applied: list[dict[str, str]] = field(default_factory=list)
    suggestions: list[dict[str, Any]] = field(default_factory=list)
    left_alone: bool = False


@dataclass(frozen=True)
class Agent:
    rules: Rules
    max_tags: int
    apply_links: bool = False
    summarizer: Summarizer | None = None

    def run(self, path: str, raw: bytes, names: CandidateIndex, resolver: Resolver) -> Result:
        note = parse_note(path, raw)
        if NO_AUTO_TAG in {tag.casefold() for tag in note.tags}:
            return Result(tags=note.tags, left_alone=True)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("%s is not valid UTF-8: suggestions only, the file is not written", path)
            return Result(tags=note.tags, suggestions=self._suggest(path, note, names, resolver))
        split = edit.split_note(text)
        mentions = find_mentions(split.body, names, skip_paths=_linked(path, note, resolver))
        result = Result()
        spans = self._links(path, split.body, mentions, resolver, result)
        edited = replace(split, body=edit.replace_spans(split.body, spans))
        if spans:
            result.rules.append(AUTO_LINK)
        edited = self._tag(path, note, edited, result)
        edited = self._summarise(path, note, edited, result)
        result.tags = [*note.tags, *result.tags_added]
        rendered = edited.render()
        if rendered != text:
            result.content = rendered.encode("utf-8")
        return result

    # -- auto-tag ------------------------------------------------------------------------

    def rule_tags(self, path: str, note: ParsedNote) -> list[str]:
        """Tags the rules give this note, in rule order (folders, then keywords)."""
        tags: list[str] = []
        lowered = path.lower()
        for prefix, folder_tags in self.rules.folders.items():
            if lowered.startswith(prefix):
                tags += folder_tags
        if self.rules.keywords:
            visible = note.title + "\n" + visible_text(note.text)
            for keyword, keyword_tags in self.rules.keywords.items():
                if has_phrase(visible, keyword):
                    tags += keyword_tags
        unique: dict[str, str] = {}
        for tag in tags:
            unique.setdefault(tag.casefold(), tag)
        return list(unique.values())

    def tags_to_add(self, path: str, note: ParsedNote) -> list[str]:
        """The rule tags the note lacks, so that it carries at most `max_tags` rule tags."""
        present = {tag.casefold() for tag in note.tags}
        wanted = self.rule_tags(path, note)
        carried = sum(1 for tag in wanted if tag.casefold() in present)
        missing = [tag for tag in wanted if tag.casefold() not in present]
        return missing[: max(0, self.max_tags - carried)]

    def _tag(
        self, path: str, note: ParsedNote, text: edit.NoteText, result: Result
    ) -> edit.NoteText:
        to_add = self.tags_to_add(path, note)
        if not to_add:
            return text
        edited = edit.add_tags(text, to_add)
        if edited is None:
            log.warning("%s: its frontmatter cannot be edited safely; tags not added", path)
            return text
        result.tags_added = to_add
        result.rules.append(AUTO_TAG)
        return edited

    # -- auto-link -----------------------------------------------------------------------

    def _links(
        self,
        path: str,
        body: str,
        mentions: list[Mention],
        resolver: Resolver,
        result: Result,
    ) -> list[tuple[int, int, str]]:
        spans = []
        for mention in mentions:
            written = body[mention.start : mention.end]
            target = mention.candidate.path
            if self.apply_links and not _NOT_IN_ALIAS & set(written):
                in_table = _line_at(body, mention.start).lstrip().startswith("|")
                link = _wikilink(resolver, path, target, written, in_table=in_table)
                spans.append((mention.start, mention.end, link))
                result.links_applied.append(
                    {"target_path": target, "mention": written, "link": link}
                )
            else:
                result.suggestions.append(_suggestion(mention, written))
        return spans

    def _suggest(
        self, path: str, note: ParsedNote, names: CandidateIndex, resolver: Resolver
    ) -> list[dict[str, Any]]:
        mentions = find_mentions(note.text, names, skip_paths=_linked(path, note, resolver))
        return [_suggestion(m, note.text[m.start : m.end]) for m in mentions]

    # -- summary -------------------------------------------------------------------------

    def _summarise(
        self, path: str, note: ParsedNote, text: edit.NoteText, result: Result
    ) -> edit.NoteText:
        if self.summarizer is None or "summary" in note.frontmatter or note.errors:
            return text
        from weavenn_cli.runtime.agent.claude import SummaryFailed

        try:
            summary = self.summarizer.summarize(note.title, note.text)
        except SummaryFailed as error:
            log.warning("%s: no summary this time: %s", path, error)
            return text
        edited = edit.set_summary(text, summary)
        if edited is None:
            log.warning("%s: its frontmatter cannot be edited safely; summary not added", path)
            return text
        result.summary = summary
        result.rules.append(SUMMARY)
        return edited


def _linked(path: str, note: ParsedNote, resolver: Resolver) -> set[str]:
    """The note itself and the notes it already links to: never suggested."""
    targets = {resolver.resolve(path, link) for link in note.links}
    return {path} | {target for target in targets if target}


def _wikilink(
    resolver: Resolver, source: str, target: str, written: str, *, in_table: bool = False
) -> str:
    """`[[name]]` when the mention is the link's name as written, else `[[name|mention]]`.

    The name is the file name when it leads to the target from `source`, else the path. In a
    table row the pipe is escaped (`\\|`), as Obsidian writes it, so the row keeps its cells.
    """
    stem = posixpath.splitext(posixpath.basename(target))[0]
    name = stem if resolver.resolve_note(source, stem) == target else posixpath.splitext(target)[0]
    if written == name:
        return f"[[{name}]]"
    separator = "\\|" if in_table else "|"
    return f"[[{name}{separator}{written}]]"


def _line_at(text: str, offset: int) -> str:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return text[start : None if end < 0 else end]


def _suggestion(mention: Mention, written: str) -> dict[str, Any]:
    return {"target_path": mention.candidate.path, "mention": written, "score": mention.score()}
