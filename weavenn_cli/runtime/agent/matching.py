"""Finding words in a note's text where a person would read them: not in code, comments,
links, URLs, tags or HTML, and only as whole words, in any case.

Mentions of other notes are found by walking the words of the text once and looking up
each run of up to N words in a dictionary of titles and aliases, so the cost grows with the
text, not with the number of notes in the vault.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from weavenn_cli.runtime.vault.parser import MASK, mask_code_and_comments

_HIDDEN = re.compile(
    r"!?\[\[[^\[\]\n]*\]\]"  # wikilinks and embeds
    r"|!?\[[^\]\n]*\]\([^)\n]*\)"  # Markdown links and images, text included
    r"|(?:\b[a-zA-Z][a-zA-Z0-9+.-]*://|\bwww\.|\bmailto:)\S+"  # URLs
    r"|(?<!\S)#[\w/\-]+"  # inline tags
    r"|<[^<>\n]+>"  # HTML tags and autolinks
)
_WORD = re.compile(r"\w+")
MAX_WORDS = 8


def visible_text(body: str) -> str:
    """`body` with everything that is not prose blanked out; offsets and lengths kept."""
    masked = mask_code_and_comments(body.replace("\r", " "))
    return _HIDDEN.sub(lambda match: MASK * len(match.group(0)), masked)


def match_key(text: str) -> str:
    """How titles, aliases and keywords compare: any case, any run of spaces."""
    return " ".join(text.casefold().split())


def _usable(key: str, min_length: int) -> bool:
    return len(key) >= min_length and bool(_WORD.match(key)) and bool(re.search(r"\w$", key))


# -- keywords (auto-tag) -----------------------------------------------------------------------


def has_phrase(visible: str, phrase: str) -> bool:
    """`phrase` as whole words, any case, spaces between words as any run of spaces."""
    words = [re.escape(word) for word in phrase.split()]
    if not words:
        return False
    pattern = r"(?<!\w)" + r"[ \t]+".join(words) + r"(?!\w)"
    return re.search(pattern, visible, re.IGNORECASE) is not None


# -- note mentions (auto-link) -----------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    path: str
    name: str  # the title or alias, as the note writes it
    alias: bool


@dataclass
class CandidateIndex:
    """Titles and aliases of the vault's notes by match key; a key two notes share is left
    out (a link to the wrong note is worse than none)."""

    by_key: dict[str, Candidate] = field(default_factory=dict)
    max_words: int = 1

    @classmethod
    def build(
        cls, notes: Iterable[tuple[str, str, Iterable[str]]], min_length: int
    ) -> CandidateIndex:
        found: dict[str, Candidate] = {}
        ambiguous: set[str] = set()
        for path, title, aliases in notes:
            names = [(title, False), *((alias, True) for alias in aliases)]
            for name, is_alias in names:
                key = match_key(name)
                if not _usable(key, min_length) or key in ambiguous:
                    continue
                known = found.get(key)
                if known is not None and known.path != path:
                    ambiguous.add(key)
                    del found[key]
                elif known is None or (known.alias and not is_alias):
                    found[key] = Candidate(path, name, is_alias)
        longest = max((len(_WORD.findall(key)) for key in found), default=1)
        return cls(found, min(longest, MAX_WORDS))


@dataclass
class Mention:
    """The first mention of one note in the text, and how many times it is mentioned."""

    candidate: Candidate
    start: int
    end: int
    text: str
    count: int = 1

    @property
    def words(self) -> int:
        return len(_WORD.findall(self.text))

    def score(self) -> float:
        """0..1: longer names, the exact spelling, a title and repetition all count.

        0.4 for one word; +0.2 per extra word (up to two); +0.1 when written exactly as the
        title or alias; +0.05 per further mention (up to 0.15); -0.05 for an alias.
        """
        score = 0.4 + 0.2 * min(self.words - 1, 2)
        score += 0.1 if self.text == self.candidate.name else 0.0
        score += min(0.15, 0.05 * (self.count - 1))
        score -= 0.05 if self.candidate.alias else 0.0
        return round(min(1.0, max(0.0, score)), 2)


def find_mentions(body: str, index: CandidateIndex, *, skip_paths: set[str]) -> list[Mention]:
    """Mentions of indexed notes in `body` (not of `skip_paths`), in order of first mention."""
    visible = visible_text(body)
    words = [(m.start(), m.end()) for m in _WORD.finditer(visible)]
    mentions: dict[str, Mention] = {}
    position = 0
    while position < len(words):
        width = _longest_match(visible, words, position, index, mentions, skip_paths)
        position += max(width, 1)
    return sorted(mentions.values(), key=lambda mention: mention.start)


def _longest_match(
    visible: str,
    words: list[tuple[int, int]],
    position: int,
    index: CandidateIndex,
    mentions: dict[str, Mention],
    skip_paths: set[str],
) -> int:
    start = words[position][0]
    for width in range(min(index.max_words, len(words) - position), 0, -1):
        end = words[position + width - 1][1]
        text = visible[start:end]
        if "\n" in text or MASK in text:
            continue
        candidate = index.by_key.get(match_key(text))
        if candidate is None or candidate.path in skip_paths:
            continue
        known = mentions.get(candidate.path)
        if known is None:
            mentions[candidate.path] = Mention(candidate, start, end, text)
        else:
            known.count += 1
        return width
    return 0
