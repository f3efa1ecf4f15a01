"""Notes as text: YAML frontmatter plus Markdown body; limits on what frontmatter may hold."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler
from pydantic import BaseModel, Field

from weavenn_cli.runtime.files.errors import InvalidFrontmatter

MAX_FRONTMATTER_KEYS = 100
MAX_FRONTMATTER_DEPTH = 5
_YAML = YAMLHandler()


class Note(BaseModel):
    path: str
    content: str
    frontmatter: dict[str, Any] = Field(default_factory=dict)
    size: int | None = None
    modified_at: datetime | None = None


class NoteSummary(BaseModel):
    path: str
    size: int | None = None
    modified_at: datetime | None = None


class NoteList(BaseModel):
    items: list[NoteSummary]
    truncated: bool


def parse_note(text: str) -> tuple[dict[str, Any], str]:
    """(frontmatter, body). The body is kept byte for byte; bad YAML leaves it all as body."""
    if not _YAML.detect(text):
        return {}, text
    try:
        raw, body = _YAML.split(text)
        metadata = yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError):
        return {}, text
    if not isinstance(metadata, dict):
        return {}, text
    return metadata, body.removeprefix("\n")


def render_note(front: dict[str, Any], body: str) -> str:
    if not front:
        return body
    dumped = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"---\n{dumped}---\n{body}"


def check_frontmatter(front: Any) -> dict[str, Any]:
    """Frontmatter a note may carry: a mapping of at most 100 keys, at most 5 levels deep."""
    if front is None:
        return {}
    if not isinstance(front, dict):
        raise InvalidFrontmatter("frontmatter must be an object of keys and values")
    if len(front) > MAX_FRONTMATTER_KEYS:
        raise InvalidFrontmatter(
            f"frontmatter has {len(front)} keys; at most {MAX_FRONTMATTER_KEYS}"
        )
    depth = _depth(front)
    if depth > MAX_FRONTMATTER_DEPTH:
        raise InvalidFrontmatter(
            f"frontmatter is nested {depth} levels deep; at most {MAX_FRONTMATTER_DEPTH}"
        )
    return front


def merge_frontmatter(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386): objects merge key by key, `null` removes a key."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_frontmatter(merged[key], value)
        else:
            merged[key] = value
    return merged


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def jsonable(front: dict[str, Any]) -> dict[str, Any]:
    """YAML dates become ISO strings, so frontmatter read from disk survives JSON."""
    return {str(key): _jsonable(value) for key, value in front.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return jsonable(value)
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value
