"""Obsidian Markdown: frontmatter, tags, links, headings and title of one note.

`parse_note` never raises on content: malformed frontmatter becomes `{}` with the reason in
`errors`, text that is not UTF-8 is decoded with replacement characters, and binary content
yields an empty note with an error. The result serialises into the `note` field of a
`VaultFileEvent`, so a consumer needs no access to the vault files.
"""

from __future__ import annotations

import base64
import hashlib
import math
import posixpath
import re
import unicodedata
from bisect import bisect_right
from datetime import date, datetime, time
from typing import Any, Literal
from urllib.parse import unquote

import yaml
from pydantic import BaseModel, Field

# libyaml when the wheel has it (it always does on common platforms), the pure loader else.
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Obsidian treats a link to these as a link to an attachment, not to a note.
_ATTACHMENTS = "png jpg jpeg gif bmp svg webp avif heic tif tiff ico mp3 wav m4a ogg 3gp flac webm"
_ATTACHMENTS += " mp4 ogv mov mkv pdf canvas base excalidraw zip csv json txt html"
ATTACHMENT_EXTENSIONS = frozenset(_ATTACHMENTS.split())
BINARY_SNIFF_BYTES = 8192
# A YAML alias bomb is small on disk and huge once expanded: stop converting past this.
MAX_FRONTMATTER_NODES = 10_000

LinkKind = Literal["wikilink", "markdown"]
TargetKind = Literal["note", "heading", "attachment"]


class Heading(BaseModel):
    level: int
    text: str
    line: int


class Link(BaseModel):
    """One outgoing link as written; `target` is the path part ('' for a local heading link)."""

    target: str
    heading: str | None = None
    block: str | None = None
    alias: str | None = None
    embed: bool = False
    kind: LinkKind = "wikilink"
    target_kind: TargetKind = "note"


class ParsedNote(BaseModel):
    """What the cache keeps of a note, independent of where it is stored."""

    title: str
    frontmatter: dict[str, Any] = Field(default_factory=dict)
    node_type: str | None = None
    aliases: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    headings: list[Heading] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    text: str = ""
    text_truncated: bool = False
    size: int = 0
    errors: list[str] = Field(default_factory=list)


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def parse_note(path: str, content: bytes, *, max_text_bytes: int | None = None) -> ParsedNote:
    """Parse the note at vault-relative `path`; `text` is cut at `max_text_bytes` when given."""
    fallback_title = posixpath.splitext(posixpath.basename(path))[0] or path
    if b"\x00" in content[:BINARY_SNIFF_BYTES]:
        return ParsedNote(
            title=fallback_title, size=len(content), errors=["binary content: not parsed"]
        )
    errors: list[str] = []
    text = _decode(content, errors)
    frontmatter, body, body_line = _split_frontmatter(text, errors)
    masked = mask_code_and_comments(body)
    wikilinks = _wikilink_matches(masked)
    headings = _headings(body, masked, body_line)
    note = ParsedNote(
        title=_title(frontmatter, headings, fallback_title),
        frontmatter=frontmatter,
        node_type=_scalar_text(frontmatter.get("type")),
        aliases=_string_list(frontmatter.get("aliases", frontmatter.get("alias"))),
        tags=_dedupe(frontmatter_tags(frontmatter) + _inline_tags(masked, wikilinks)),
        headings=headings,
        links=_links(masked, wikilinks),
        size=len(content),
        errors=errors,
    )
    note.text, note.text_truncated = _cap_text(body, max_text_bytes)
    return note


# -- text and frontmatter ------------------------------------------------------------------


def _decode(content: bytes, errors: list[str]) -> str:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        errors.append(f"not valid UTF-8 (byte {error.start}): undecodable bytes replaced")
        text = content.decode("utf-8", errors="replace").removeprefix("\ufeff")
    # NUL cannot be stored in PostgreSQL text or JSON.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")


_FRONTMATTER_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)


def _split_frontmatter(text: str, errors: list[str]) -> tuple[dict[str, Any], str, int]:
    """(frontmatter, body, line number where the body starts)."""
    first_line, _, rest = text.partition("\n")
    if first_line.rstrip() != "---":
        return {}, text, 1
    close = _FRONTMATTER_CLOSE.search(rest)
    if close is None:
        errors.append("frontmatter: opening --- is never closed; read as text")
        return {}, text, 1
    raw = rest[: close.start()]
    body = rest[close.end() :].removeprefix("\n")
    body_line = 3 + raw.count("\n")
    return _load_frontmatter(raw, errors), body, body_line


def _load_frontmatter(raw: str, errors: list[str]) -> dict[str, Any]:
    try:
        loaded = yaml.load(raw, Loader=_YAML_LOADER)  # a safe loader (CSafeLoader/SafeLoader)
    except yaml.YAMLError as error:
        errors.append(f"frontmatter: invalid YAML: {_first_line(error)}")
        return {}
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        errors.append(f"frontmatter: expected key: value pairs, got a {type(loaded).__name__}")
        return {}
    budget = [MAX_FRONTMATTER_NODES]
    try:
        safe = _json_safe(loaded, budget)
    except _TooLarge:
        errors.append(f"frontmatter: more than {MAX_FRONTMATTER_NODES} values once expanded")
        return {}
    return safe if isinstance(safe, dict) else {}


class _TooLarge(Exception):
    pass


def _json_safe(value: Any, budget: list[int]) -> Any:
    """YAML values as JSON values: dates as ISO text, sets as lists, keys as strings."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if isinstance(value, dict):
        return {_key(k): _json_safe(v, budget) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_json_safe(item, budget) for item in items]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    if isinstance(value, str):
        return _without_nul(value)
    return value


def _without_nul(text: str) -> str:
    # YAML can spell a NUL ("\0"); PostgreSQL text and JSON cannot store one.
    return text.replace("\x00", "\ufffd")


def _key(key: Any) -> str:
    if isinstance(key, (datetime, date)):
        return key.isoformat()
    return "null" if key is None else _without_nul(str(key))


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split())[:200]


def _scalar_text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _string_list(value: Any) -> list[str]:
    """A list, or a comma-separated string, of non-empty strings."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [text for item in items if (text := _scalar_text(item))]


def frontmatter_tags(frontmatter: dict[str, Any]) -> list[str]:
    value = frontmatter.get("tags", frontmatter.get("tag"))
    if isinstance(value, str):
        # Obsidian accepts "a, b" and "a b" in a string.
        value = re.split(r"[,\s]+", value)
    tags = [_clean_tag(item) for item in _string_list(value)]
    return [tag for tag in tags if tag]


def _clean_tag(raw: str) -> str:
    tag = raw.strip().lstrip("#")
    return tag if _TAG_BODY.fullmatch(tag) and not tag.isdigit() else ""


def _dedupe(items: list[str]) -> list[str]:
    """Tags compare without case, as in Obsidian; the first spelling wins."""
    seen: set[str] = set()
    result = []
    for item in items:
        if item.casefold() not in seen:
            seen.add(item.casefold())
            result.append(item)
    return result


def _cap_text(body: str, max_bytes: int | None) -> tuple[str, bool]:
    if max_bytes is None:
        return body, False
    encoded = body.encode("utf-8")
    if len(encoded) <= max_bytes:
        return body, False
    return encoded[:max_bytes].decode("utf-8", errors="ignore"), True


# -- masking: code, comments -----------------------------------------------------------------

MASK = "\x01"
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# Leftmost wins, so a %% inside inline code is code and a backtick inside a comment is comment.
# Every branch starts with a literal character (the lookbehinds come after it), so the regex
# engine skips ahead to the next %, < or ` instead of trying the pattern at every position.
_INLINE_MASKS = re.compile(
    r"%%.*?(?:%%|\Z)"  # Obsidian comment, may span lines; unclosed runs to the end
    r"|<!--.*?(?:-->|\Z)"  # HTML comment
    r"|(`(?<!``)`*)(?!`)(?:[^\n]|\n(?![ \t]*\n))+?(?<!`)\1(?!`)",  # inline code, in a paragraph
    re.DOTALL,
)


def mask_code_and_comments(body: str) -> str:
    """The body with code and comments blanked out; offsets and line breaks kept.

    The blank is not whitespace, so `-->#word` or `` `x`#word `` does not become a tag.
    """
    lines = body.split("\n")
    fence: str | None = None
    for index, line in enumerate(lines):
        opener = _FENCE_OPEN.match(line)
        if fence is None and opener:
            fence = opener.group(1)
            lines[index] = MASK * len(line)
        elif fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and stripped.strip(fence[0]) == "":
                fence = None
            lines[index] = MASK * len(line)
    masked = "\n".join(lines)
    return _INLINE_MASKS.sub(_blank, masked)


def _blank(match: re.Match[str]) -> str:
    text = match.group(0)
    if "\n" not in text:
        return MASK * len(text)
    return "\n".join(MASK * len(line) for line in text.split("\n"))


# -- headings, title -------------------------------------------------------------------------

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)


def _headings(body: str, masked: str, first_line: int) -> list[Heading]:
    headings = []
    for match in _HEADING.finditer(masked):
        # Found in the masked text (not in code), read from the original line so inline
        # code inside a heading is kept.
        line_end = body.find("\n", match.start())
        original = _HEADING.match(body[match.start() : None if line_end < 0 else line_end])
        if original:
            line = first_line + masked.count("\n", 0, match.start())
            headings.append(Heading(level=len(match.group(1)), text=original.group(2), line=line))
    return headings


def _title(frontmatter: dict[str, Any], headings: list[Heading], fallback: str) -> str:
    title = _scalar_text(frontmatter.get("title"))
    if title:
        return title
    first_h1 = next((h.text for h in headings if h.level == 1), None)
    return first_h1 or fallback


# -- tags --------------------------------------------------------------------------------------

# Word characters, "/" for nesting, "-", and combining accents (a decomposed é is e + U+0301).
_TAG_CHARS = r"[\w/\-\u0300-\u036f]"
_TAG_BODY = re.compile(_TAG_CHARS + "+")
# After the start of the text or whitespace only: `foo#bar` and `page#section` are not tags.
# The patterns start with a literal character and look behind after it ("!" of an embed is
# checked by hand): a pattern that starts with a lookbehind or an optional group is tried at
# every position of the text, one that starts with a literal jumps from candidate to
# candidate, several times faster.
_INLINE_TAG = re.compile(r"#(?<!\S#)(" + _TAG_CHARS + "+)")
_WIKILINK = re.compile(r"\[\[([^\[\]\n]*)\]\]")
_MD_LINK = re.compile(r"\[([^\]\n]*)\]\(\s*(<[^>\n]+>|[^)\s]+)(?:\s+[\"'(][^\n]*?[\"')])?\s*\)")


def _wikilink_matches(masked: str) -> list[re.Match[str]]:
    return list(_WIKILINK.finditer(masked))


def _start(masked: str, match: re.Match[str]) -> int:
    """Where a link starts: at its "!" when it is an embed."""
    start = match.start()
    return start - 1 if _is_embed(masked, match) else start


def _is_embed(masked: str, match: re.Match[str]) -> bool:
    start = match.start()
    return start > 0 and masked[start - 1] == "!"


def _inline_tags(masked: str, wikilinks: list[re.Match[str]]) -> list[str]:
    candidates = list(_INLINE_TAG.finditer(masked))
    if not candidates:
        return []
    # A tag follows whitespace, so none can sit inside a URL or a Markdown link target; a
    # wikilink may hold a space: `[[note #x]]` is a link, not a tag.
    spans = [(_start(masked, m), m.end()) for m in wikilinks]
    starts = [start for start, _ in spans]
    tags = []
    for match in candidates:
        index = bisect_right(starts, match.start()) - 1
        if index >= 0 and match.start() < spans[index][1]:
            continue
        tag = unicodedata.normalize("NFC", match.group(1).strip("/"))
        if tag and not tag.replace("/", "").isdigit():
            tags.append(tag)
    return tags


# -- links -------------------------------------------------------------------------------------

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _links(masked: str, wikilinks: list[re.Match[str]]) -> list[Link]:
    found: list[tuple[int, Link]] = []
    for match in wikilinks:
        link = _wikilink(match.group(1), embed=_is_embed(masked, match))
        if link is not None:
            found.append((_start(masked, match), link))
    for match in _MD_LINK.finditer(masked):
        link = _markdown_link(match.group(2), embed=_is_embed(masked, match))
        if link is not None:
            found.append((_start(masked, match), link))
    return [link for _, link in sorted(found, key=lambda item: item[0])]


def _wikilink(inner: str, *, embed: bool) -> Link | None:
    # In a Markdown table the pipe of an alias is escaped: [[note\|alias]].
    target_part, _, alias = inner.replace("\\|", "|").partition("|")
    path, _, fragment = target_part.partition("#")
    path = path.strip()
    if not path and not fragment.strip():
        return None
    return _link(path, fragment, alias.strip() or None, embed=embed, kind="wikilink")


def _markdown_link(destination: str, *, embed: bool) -> Link | None:
    destination = destination.strip().removeprefix("<").removesuffix(">")
    if _SCHEME.match(destination):
        return None  # web, mailto:, obsidian:// and other external links
    path, _, fragment = unquote(destination).partition("#")
    extension = posixpath.splitext(path)[1].lower().lstrip(".")
    if extension not in ("", "md"):
        return None  # an image or file, not a note
    if not path and not fragment:
        return None
    return _link(path.strip(), fragment, None, embed=embed, kind="markdown")


def _link(path: str, fragment: str, alias: str | None, *, embed: bool, kind: LinkKind) -> Link:
    fragment = fragment.strip()
    block = fragment[1:] if fragment.startswith("^") else None
    heading = fragment if fragment and block is None else None
    return Link(
        target=path,
        heading=heading,
        block=block,
        alias=alias,
        embed=embed,
        kind=kind,
        target_kind=_target_kind(path),
    )


def _target_kind(path: str) -> TargetKind:
    if not path:
        return "heading"
    extension = posixpath.splitext(path)[1].lower().lstrip(".")
    return "attachment" if extension in ATTACHMENT_EXTENSIONS else "note"
