"""`weavenn watch`: publish every change of the vault as an event."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from weavenn_cli.commands._shared import get_settings, stderr


def watch(
    vault: Path | None = typer.Option(
        None, "--vault", help="Vault folder (default: VAULT_PATH).", metavar="PATH"
    ),
    no_initial_scan: bool = typer.Option(
        False, "--no-initial-scan", help="Do not publish changes made while the watcher was down."
    ),
) -> None:
    """Watch the vault and write each change as an event to the outbox."""
    from weavenn_cli.runtime.vault.database import vault_sessions
    from weavenn_cli.runtime.vault.files import PathFilter, resolve_vault
    from weavenn_cli.runtime.vault.watcher import VaultWatcher, WatchConfig

    settings = get_settings()
    config = WatchConfig(
        root=resolve_vault(vault or settings.vault_path),
        vault_id=settings.vault_id,
        path_filter=PathFilter.from_settings(settings),
        debounce_seconds=settings.debounce_seconds,
        max_text_bytes=settings.max_note_text_bytes,
        max_event_bytes=settings.max_event_bytes,
    )
    watcher = VaultWatcher(vault_sessions(settings.database_url), config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stderr.print(f"watching {config.root} (vault {config.vault_id}); Ctrl-C or SIGTERM stops")
    watcher.run(stop, initial_scan=not no_initial_scan)
    stderr.print(f"stopped after publishing {watcher.published} event(s)")
