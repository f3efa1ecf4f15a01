"""What every command shares: global state, settings, consoles, output helpers.

Only light imports here: `weavenn --help` loads this module.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from weavenn_cli.runtime.config import Settings

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


@dataclass
class GlobalState:
    env_file: Path | None = None
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)


state = GlobalState()


def reset_state(env_file: Path | None, debug: bool) -> None:
    state.env_file = env_file
    state.debug = debug or os.environ.get("WEAVENN_DEBUG", "") in ("1", "true")
    state._settings = None


def get_settings(**overrides: Any) -> Settings:
    """The effective settings, loaded once per command (overrides are not cached)."""
    from weavenn_cli.runtime.config import load_settings

    if overrides:
        return load_settings(state.env_file, **overrides)
    if state._settings is None:
        state._settings = load_settings(state.env_file)
        configure_logging(state._settings.log_level)
    return state._settings


def configure_logging(level: str) -> None:
    """Logs go to stderr, so stdout stays clean data for scripts."""
    root = logging.getLogger()
    if not any(getattr(h, "_weavenn", False) for h in root.handlers):
        from rich.logging import RichHandler

        handler = RichHandler(console=stderr, show_path=False, rich_tracebacks=False)
        handler._weavenn = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if state.debug else getattr(logging, level, logging.INFO))
    # pika logs every failed connection attempt as an ERROR with a traceback; weavenn
    # reports broker trouble itself, in one line.
    logging.getLogger("pika").setLevel(logging.DEBUG if state.debug else logging.CRITICAL)
    for noisy in ("httpx", "httpcore", "urllib3", "kubernetes", "alembic", "watchfiles"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Of alembic's chatter, operators want the steps it runs.
    migration_log = logging.getLogger("alembic.runtime.migration")
    migration_log.setLevel(logging.INFO)
    if not migration_log.filters:
        migration_log.addFilter(lambda record: record.getMessage().startswith("Running "))


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, one document."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def make_table(*columns: str, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column)
    return table


def print_rows(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
) -> None:
    """A table of data. Cells are plain text (names, reasons, paths are free text, so markup
    in them is shown as written); pass a rich `Text` for a styled cell."""
    table = make_table(*columns, title=title)
    for row in rows:
        table.add_row(*(_cell(cell) for cell in row))
    stdout.print(table)


def _cell(value: Any) -> Text:
    if isinstance(value, Text):
        return value
    return Text("" if value is None else str(value))


def exit_with(code: int) -> None:
    raise typer.Exit(code)


STATUS_STYLES = {"ok": "green", "fail": "red", "warn": "yellow", "info": "cyan", "skip": "dim"}


def styled_status(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))
