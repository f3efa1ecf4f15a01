"""`weavenn watch`: publish every change of the vault as an event."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from weavenn_cli.commands._shared import get_settings, stderr

if TYPE_CHECKING:
    from weavenn_cli.runtime.bus.relay import Relay


def watch(
    vault: Path | None = typer.Option(
        None, "--vault", help="Vault folder (default: VAULT_PATH).", metavar="PATH"
    ),
    no_initial_scan: bool = typer.Option(
        False, "--no-initial-scan", help="Do not publish changes made while the watcher was down."
    ),
    no_relay: bool = typer.Option(
        False, "--no-relay", help="Only write the outbox; a separate `weavenn relay` publishes it."
    ),
) -> None:
    """Watch the vault and publish each change: to the outbox, then (relay) to the bus."""
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
    sessions = vault_sessions(settings.database_url)
    relay = None if no_relay else _start_relay()
    on_commit = (lambda _count: relay.wake()) if relay is not None else None
    watcher = VaultWatcher(sessions, config, on_commit=on_commit)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stderr.print(f"watching {config.root} (vault {config.vault_id}); Ctrl-C or SIGTERM stops")
    try:
        watcher.run(stop, initial_scan=not no_initial_scan)
    finally:
        if relay is not None:
            relay.stop()  # what it did not publish yet stays in the outbox for the next relay
    stderr.print(f"stopped after publishing {watcher.published} event(s)")


def _start_relay() -> Relay:
    """The outbox relay on a thread of this process, woken after each commit of events."""
    from weavenn_cli.commands.relay import build_relay

    relay, transport = build_relay()
    relay.start()
    stderr.print(f"relaying the outbox to {transport.describe()}")
    return relay
