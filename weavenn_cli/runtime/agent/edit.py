"""Edits of a note's text that leave everything else byte for byte.

A person's note is not re-serialised: the frontmatter is edited line by line (a tag appended
to the list as the person wrote it, a `summary:` line added), the body only where a mention
becomes a wikilink. Line endings (LF or CRLF) and a byte-order mark are kept. Every
frontmatter edit is checked by parsing the result: the edited key must hold what was meant
and every other key exactly what it held before, or the edit is not made.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import yaml

from weavenn_cli.runtime.vault.parser import frontmatter_tags

_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CLOSE = re.compile(r"(?:---|\.\.\.)[ \t]*")
# A top-level key: at column 0, not a comment, a list item or a flow collection.
_KEY_LINE = re.compile(
    r"""^(?P<key>"[^"\n]*"|'[^'\n]*'|[^\s#\-"'\[{][^:\n]*?)[ \t]*:(?=[ \t]|\r?\n|$)"""
)
_ITEM_LINE = re.compile(r"^(?P<indent>[ \t]*)-(?P<space>[ \t]+)\S")
_PLAIN_SCALAR = re.compile(r"[\w/\-][\w/\-, ]*")
_FLOW_LIST = re.compile(r"\[(?P<inner>[^\[\]{}#\n]*)\]")


@dataclass(frozen=True)
class NoteText:
    """A note split where the parser splits it: frontmatter lines, body."""

    bom: str
    newline: str
    head: tuple[str, ...] | None  # lines between the --- delimiters, with their line endings
    open_line: str
    close_line: str
    body: str

    def render(self) -> str:
        if self.head is None:
            return self.bom + self.body
        return self.bom + self.open_line + "".join(self.head) + self.close_line + self.body


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    return [*lines, parts[-1]] if parts[-1] else lines


def split_note(text: str) -> NoteText:
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    text = text.removeprefix("\ufeff")
    lines = _lines(text)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    plain = NoteText(bom, newline, None, "", "", text)
    if not lines or lines[0].rstrip("\r\n").rstrip() != "---":
        return plain
    for index in range(1, len(lines)):
        if _CLOSE.fullmatch(lines[index].rstrip("\r\n")):
            return NoteText(
                bom,
                newline,
                tuple(lines[1:index]),
                lines[0],
                lines[index],
                "".join(lines[index + 1 :]),
            )
    return plain  # never closed: the parser reads it all as text


def _load(head: Sequence[str]) -> dict[str, Any] | None:
    try:
        loaded = yaml.load("".join(head), Loader=_YAML_LOADER)  # a safe loader
    except yaml.YAMLError:
        return None
    if loaded is None:
        return {}
    return loaded if isinstance(loaded, dict) else None


def _entries(head: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Top-level key -> (first line, end line) of its entry in `head`."""
    starts: list[tuple[str, int]] = []
    boundaries: list[int] = []
    for index, line in enumerate(head):
        match = _KEY_LINE.match(line)
        if match:
            starts.append((match.group("key").strip("\"'"), index))
            boundaries.append(index)
        elif line.startswith("#"):
            boundaries.append(index)  # a comment at column 0 belongs to what follows
    entries: dict[str, tuple[int, int]] = {}
    for key, start in starts:
        end = next((b for b in boundaries if b > start), len(head))
        entries.setdefault(key, (start, end))
    return entries


def _unclosed(note: NoteText) -> bool:
    """A first line of --- that is never closed: adding a frontmatter above would confuse it."""
    return note.body.split("\n", 1)[0].rstrip("\r").rstrip() == "---"


def _without(front: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in front.items() if k != key}


# -- tags ------------------------------------------------------------------------------------


def add_tags(note: NoteText, tags: Sequence[str]) -> NoteText | None:
    """`note` with `tags` appended to its frontmatter tags; None when no safe edit exists."""
    if not tags:
        return note
    if note.head is None:
        if _unclosed(note):
            return None
        head = ("tags:" + note.newline, *(f"  - {tag}{note.newline}" for tag in tags))
        opened = replace(note, head=head, open_line="---" + note.newline)
        return replace(opened, close_line="---" + note.newline)
    before = _load(note.head)
    if before is None:
        return None  # the person's frontmatter does not parse: leave it to them
    key = "tags" if "tags" in before or "tag" not in before else "tag"
    expected = [*frontmatter_tags(before), *tags]
    for candidate in (_append_in_place(note, key, tags), _rewrite_entry(note, key, expected)):
        if candidate is not None and _tags_are(candidate.head, before, key, expected):
            return candidate
    return None


def _tags_are(
    head: Sequence[str] | None, before: dict[str, Any], key: str, expected: list[str]
) -> bool:
    after = _load(head or ())
    if after is None or _without(after, key) != _without(before, key):
        return False
    return [t.casefold() for t in frontmatter_tags(after)] == [t.casefold() for t in expected]


def _append_in_place(note: NoteText, key: str, tags: Sequence[str]) -> NoteText | None:
    """The smallest edit: the new tags added to the list in the style it is written in."""
    assert note.head is not None
    head = list(note.head)
    entry = _entries(head).get(key)
    if entry is None:
        return replace(note, head=(*head, *_block(key, tags, note.newline)))
    start, end = entry
    line = head[start].rstrip("\r\n")
    ending = head[start][len(line) :] or note.newline
    key_part, value = line.split(":", 1)
    stripped = value.strip()
    items = [i for i in range(start + 1, end) if _ITEM_LINE.match(head[i])]
    if stripped.startswith("[") and end == start + 1:
        flow = _FLOW_LIST.fullmatch(stripped)
        if flow is None:
            return None
        inner = flow.group("inner").rstrip()
        joined = ", ".join(tags)
        new_inner = f"{inner}, {joined}" if inner.strip() else joined
        head[start] = f"{key_part}:{value.replace(stripped, f'[{new_inner}]', 1)}{ending}"
        return replace(note, head=tuple(head))
    if not stripped and items:
        shape = _ITEM_LINE.match(head[items[-1]])
        assert shape is not None
        prefix = f"{shape.group('indent')}-{shape.group('space')}"
        new = [f"{prefix}{tag}{note.newline}" for tag in tags]
        head[items[-1] + 1 : items[-1] + 1] = new
        return replace(note, head=tuple(head))
    if not stripped and end == start + 1:
        head[start + 1 : start + 1] = [f"  - {tag}{note.newline}" for tag in tags]
        return replace(note, head=tuple(head))
    if _PLAIN_SCALAR.fullmatch(stripped) and end == start + 1:
        head[start] = line.rstrip() + ", " + ", ".join(tags) + ending
        return replace(note, head=tuple(head))
    return None


def _rewrite_entry(note: NoteText, key: str, tags: Sequence[str]) -> NoteText | None:
    """The fallback: the tags entry (only it) written again as a block list."""
    assert note.head is not None
    head = list(note.head)
    entry = _entries(head).get(key)
    if entry is None:
        return None
    start, end = entry
    while end > start + 1 and not head[end - 1].strip():
        end -= 1  # blank lines after the entry stay where they are
    head[start:end] = _block(key, tags, note.newline)
    return replace(note, head=tuple(head))


def _block(key: str, tags: Sequence[str], newline: str) -> list[str]:
    return [f"{key}:{newline}", *(f"  - {tag}{newline}" for tag in tags)]


# -- summary ---------------------------------------------------------------------------------


def set_summary(note: NoteText, summary: str) -> NoteText | None:
    """`note` with a `summary:` line in its frontmatter (added, never replacing one)."""
    line = yaml.safe_dump(
        {"summary": summary}, allow_unicode=True, width=1 << 20, default_flow_style=False
    ).rstrip("\n")
    if "\n" in line:
        return None
    if note.head is None:
        if _unclosed(note):
            return None
        return replace(
            note,
            head=(line + note.newline,),
            open_line="---" + note.newline,
            close_line="---" + note.newline,
        )
    before = _load(note.head)
    if before is None or "summary" in before:
        return None
    edited = replace(note, head=(*note.head, line + note.newline))
    after = _load(edited.head or ())
    if after is None or after.get("summary") != summary or _without(after, "summary") != before:
        return None
    return edited


# -- body ------------------------------------------------------------------------------------


def replace_spans(body: str, spans: Sequence[tuple[int, int, str]]) -> str:
    """`body` with each (start, end) replaced by its text; spans must not overlap."""
    pieces = []
    position = 0
    for start, end, text in sorted(spans):
        pieces += [body[position:start], text]
        position = end
    pieces.append(body[position:])
    return "".join(pieces)
