"""Errors the CLI turns into one line on stderr and an exit code."""

from __future__ import annotations


class WeavennError(Exception):
    """An operation failed for a reason the user can act on.

    The message is one line saying what is wrong and what to do about it.
    """

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(WeavennError):
    """The command was called wrongly (bad value, conflicting options): exit 2."""

    exit_code = 2


class ConfigError(WeavennError):
    """Settings could not be loaded or are invalid."""


class DatabaseError(WeavennError):
    """The database is unreachable, misconfigured, or in the wrong state."""
