"""Shadow comparisons: do the legacy and the new side give the same answer?

JSON bodies are compared as values (key order does not matter, list order does), after
dropping the keys ROLLOUT_SHADOW_IGNORE_FIELDS names at any depth (timestamps, typically).
Other bodies are compared byte for byte. The result is the list of differences, each a
JSON path with both values, empty when the answers agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

MAX_DIFFERENCES = 10
_NOT_JSON = object()


def compare_answers(
    legacy: tuple[int, bytes], new: tuple[int, bytes], ignored: frozenset[str]
) -> list[str]:
    found = []
    if legacy[0] != new[0]:
        found.append(f"status: {legacy[0]} ≠ {new[0]}")
    legacy_value, new_value = _json(legacy[1]), _json(new[1])
    if legacy_value is _NOT_JSON or new_value is _NOT_JSON:
        if legacy[1] != new[1]:
            found.append(f"body: {len(legacy[1])} bytes ≠ {len(new[1])} bytes, not both JSON")
        return found
    paths = _differences("$", _without(legacy_value, ignored), _without(new_value, ignored))
    for path in paths:
        found.append(path)
        if len(found) >= MAX_DIFFERENCES:
            break
    return found


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON


def _without(value: Any, ignored: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, ignored) for k, v in value.items() if k not in ignored}
    if isinstance(value, list):
        return [_without(item, ignored) for item in value]
    return value


def _differences(path: str, legacy: Any, new: Any) -> Iterator[str]:
    if isinstance(legacy, dict) and isinstance(new, dict):
        for key in sorted(legacy.keys() | new.keys()):
            child = f"{path}.{key}"
            if key not in new:
                yield f"{child}: only on the legacy side"
            elif key not in legacy:
                yield f"{child}: only on the new side"
            else:
                yield from _differences(child, legacy[key], new[key])
    elif isinstance(legacy, list) and isinstance(new, list):
        if len(legacy) != len(new):
            yield f"{path}: {len(legacy)} items ≠ {len(new)} items"
        for index, (a, b) in enumerate(zip(legacy, new, strict=False)):
            yield from _differences(f"{path}[{index}]", a, b)
    elif legacy != new or type(legacy) is not type(new):
        yield f"{path}: {_short(legacy)} ≠ {_short(new)}"


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
