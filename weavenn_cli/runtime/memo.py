"""Results kept per distinct argument, when the argument is small enough to keep."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def kept_when_small(
    size: Callable[..., int], limit: int, maxsize: int = 1024
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Keep `function`'s results (LRU, `maxsize`) for calls whose `size` is at most `limit`.

    For hot paths fed by clients (query strings, filters): they repeat the same few values,
    and a cache of long ones would be memory any client could fill. A call that raises keeps
    nothing.
    """

    def decorate(function: Callable[P, T]) -> Callable[P, T]:
        kept = functools.lru_cache(maxsize=maxsize)(function)

        @functools.wraps(function)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            if size(*args, **kwargs) <= limit:
                # lru_cache wants hashable arguments; the callers pass strings and frozen models.
                return kept(*args, **kwargs)  # type: ignore[arg-type]
            return function(*args, **kwargs)

        return call

    return decorate
