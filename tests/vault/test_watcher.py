"""The watcher on real files in temporary folders; what lands in the outbox table."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.vault.conftest import outbox_events, wait_until, write
from weavenn_cli.runtime.db.models import PublishedFile
from weavenn_cli.runtime.vault.files import PathFilter
from weavenn_cli.runtime.vault.watcher import EVENTS_PER_TRANSACTION, VaultWatcher, WatchConfig

Factory = sessionmaker[Session]
IGNORE = (".obsidian", ".trash", ".git", ".*", "*~", "*.tmp", "*.swp", "*.swx", "~$*", "4913")


def config(vault: Path, debounce: float = 0.2) -> WatchConfig:
    return WatchConfig(
        root=vault,
        vault_id="test-vault",
        path_filter=PathFilter(("*.md",), IGNORE),
        debounce_seconds=debounce,
    )


class Running:
    def __init__(
        self, watcher: VaultWatcher, stop: threading.Event, thread: threading.Thread
    ) -> None:
        self.watcher, self.stop, self.thread = watcher, stop, thread

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the watcher did not stop"


@pytest.fixture
def start(sqlite_sessions: Factory, vault: Path) -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def start_watcher(
        *, initial_scan: bool = True, debounce: float = 0.2, on_commit=None
    ) -> Running:
        watcher = VaultWatcher(sqlite_sessions, config(vault, debounce), on_commit)
        stop = threading.Event()
        thread = threading.Thread(
            target=watcher.run, args=(stop,), kwargs={"initial_scan": initial_scan}
        )
        thread.start()
        handle = Running(watcher, stop, thread)
        running.append(handle)
        assert watcher.ready.wait(timeout=15), "the watcher did not start"
        return handle

    yield start_watcher
    for handle in running:
        handle.stop.set()
        handle.thread.join(timeout=10)


def events(factory: Factory, path: str | None = None) -> list[dict[str, Any]]:
    found = outbox_events(factory)
    return [e for e in found if path is None or path in (e["file_path"], e.get("old_path"))]


def settled(factory: Factory, vault: Path, name: str = "sentinel.md") -> None:
    """Write a note and wait for its event: every change made before it has been handled."""
    write(vault, name, f"sentinel {len(outbox_events(factory))}")
    wait_until(lambda: any(e["file_path"] == name for e in events(factory)), what=f"{name} event")


def kinds(found: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in found]


def test_a_burst_of_saves_gives_one_event(start, sqlite_sessions: Factory, vault: Path) -> None:
    start(debounce=0.5)
    settled(sqlite_sessions, vault, "ready.md")
    for i in range(8):
        write(vault, "note.md", f"# Draft {i}")
    wait_until(lambda: events(sqlite_sessions, "note.md"), what="note.md event")
    settled(sqlite_sessions, vault)
    found = events(sqlite_sessions, "note.md")
    assert kinds(found) == ["vault.file.created"]
    assert found[0]["note"]["title"] == "Draft 7"


def test_a_rename_gives_one_moved_event(start, sqlite_sessions: Factory, vault: Path) -> None:
    write(vault, "old name.md", "# Keep [[link]]")
    start()
    wait_until(lambda: events(sqlite_sessions, "old name.md"), what="initial scan")
    os.rename(vault / "old name.md", vault / "sub" / "new name.md") if (
        vault / "sub"
    ).mkdir() is None else None
    wait_until(lambda: len(events(sqlite_sessions, "old name.md")) == 2, what="moved event")
    moved = events(sqlite_sessions, "old name.md")[1]
    assert moved["event_type"] == "vault.file.moved"
    assert (moved["old_path"], moved["file_path"]) == ("old name.md", "sub/new name.md")
    assert moved["note"]["links"][0]["target"] == "link"
    settled(sqlite_sessions, vault)
    assert len(events(sqlite_sessions, "old name.md")) == 2


def test_an_atomic_save_gives_updated(start, sqlite_sessions: Factory, vault: Path) -> None:
    write(vault, "note.md", "# Before")
    start()
    wait_until(lambda: events(sqlite_sessions, "note.md"), what="initial scan")
    write(vault, ".note.md.tmp", "# After")
    os.replace(vault / ".note.md.tmp", vault / "note.md")
    wait_until(lambda: len(events(sqlite_sessions, "note.md")) == 2, what="update")
    settled(sqlite_sessions, vault)
    found = events(sqlite_sessions, "note.md")
    assert kinds(found) == ["vault.file.created", "vault.file.updated"]
    assert found[1]["note"]["title"] == "After"


def test_notes_in_a_just_created_nested_folder_are_not_missed(
    start, sqlite_sessions: Factory, vault: Path
) -> None:
    start()
    settled(sqlite_sessions, vault, "ready.md")
    deep = vault / "a" / "b" / "c"
    deep.mkdir(parents=True)
    for i in range(5):
        (deep / f"n{i}.md").write_text(f"# {i}")
    (vault / "a" / "top.md").write_text("# top")
    expected = {f"a/b/c/n{i}.md" for i in range(5)} | {"a/top.md"}
    wait_until(
        lambda: expected <= {e["file_path"] for e in events(sqlite_sessions)}, what="nested notes"
    )
    assert all(kinds(events(sqlite_sessions, path)) == ["vault.file.created"] for path in expected)


def test_a_folder_rename_moves_its_notes(start, sqlite_sessions: Factory, vault: Path) -> None:
    write(vault, "projects/one.md", "# One")
    write(vault, "projects/deeper/two.md", "# Two")
    start()
    wait_until(lambda: len(events(sqlite_sessions)) == 2, what="initial scan")
    os.rename(vault / "projects", vault / "archive")
    wait_until(lambda: len(events(sqlite_sessions)) == 4, what="moves")
    moves = {(e["old_path"], e["file_path"]) for e in events(sqlite_sessions)[2:]}
    assert moves == {
        ("projects/one.md", "archive/one.md"),
        ("projects/deeper/two.md", "archive/deeper/two.md"),
    }
    assert set(kinds(events(sqlite_sessions)[2:])) == {"vault.file.moved"}


def test_unchanged_content_gives_no_event(start, sqlite_sessions: Factory, vault: Path) -> None:
    write(vault, "note.md", "# Same")
    start()
    wait_until(lambda: events(sqlite_sessions, "note.md"), what="initial scan")
    write(vault, "note.md", "# Same")
    os.utime(vault / "note.md")
    settled(sqlite_sessions, vault)
    assert kinds(events(sqlite_sessions, "note.md")) == ["vault.file.created"]


def test_ignored_paths_give_no_event(start, sqlite_sessions: Factory, vault: Path) -> None:
    start()
    settled(sqlite_sessions, vault, "ready.md")
    for ignored in (
        ".obsidian/workspace.md",
        ".trash/old.md",
        ".git/HEAD.md",
        "note.md.swp",
        "note.md~",
        "draft.tmp",
        "picture.png",
        "sub/.hidden.md",
    ):
        write(vault, ignored, "x")
    settled(sqlite_sessions, vault)
    assert {e["file_path"] for e in events(sqlite_sessions)} == {"ready.md", "sentinel.md"}


def test_binary_and_non_utf8_notes_do_not_stop_the_watcher(
    start, sqlite_sessions: Factory, vault: Path
) -> None:
    start()
    settled(sqlite_sessions, vault, "ready.md")
    write(vault, "binary.md", b"\x89PNG\x00\x00\xff\xfe")
    write(vault, "latin1.md", "caf\xe9 #tag".encode("latin-1"))
    settled(sqlite_sessions, vault)
    binary, latin1 = (
        events(sqlite_sessions, "binary.md")[0],
        events(sqlite_sessions, "latin1.md")[0],
    )
    assert binary["parse_error"] == "binary content: not parsed"
    assert latin1["note"]["tags"] == ["tag"] and latin1["parse_error"].startswith("not valid UTF-8")


def test_reconcile_publishes_changes_made_while_stopped(
    start, sqlite_sessions: Factory, vault: Path
) -> None:
    for name in ("keep.md", "edit.md", "remove.md", "rename.md"):
        write(vault, name, f"# {name}")
    first = start()
    wait_until(lambda: len(events(sqlite_sessions)) == 4, what="initial scan")
    first.halt()
    write(vault, "edit.md", "# edited while down")
    (vault / "remove.md").unlink()
    write(vault, "new.md", "# new while down")
    os.rename(vault / "rename.md", vault / "renamed.md")
    start()
    wait_until(lambda: len(events(sqlite_sessions)) == 8, what="reconciliation")
    after = {
        e["event_type"]: (e.get("old_path"), e["file_path"]) for e in events(sqlite_sessions)[4:]
    }
    assert after == {
        "vault.file.updated": (None, "edit.md"),
        "vault.file.deleted": (None, "remove.md"),
        "vault.file.created": (None, "new.md"),
        "vault.file.moved": ("rename.md", "renamed.md"),
    }


def test_no_initial_scan_leaves_offline_changes_alone(
    start, sqlite_sessions: Factory, vault: Path
) -> None:
    write(vault, "offline.md", "# written before the watcher")
    start(initial_scan=False)
    settled(sqlite_sessions, vault)
    assert events(sqlite_sessions, "offline.md") == []


def test_after_each_commit_the_callback_hears_how_many_events(
    start, sqlite_sessions: Factory, vault: Path
) -> None:
    heard: list[int] = []
    write(vault, "a.md", "a")
    write(vault, "b.md", "b")
    start(on_commit=heard.append)
    wait_until(lambda: sum(heard) >= 2, what="callback")
    assert heard[0] == 2 and len(events(sqlite_sessions)) == 2


def test_a_change_back_to_earlier_content_is_a_new_message(
    start, sqlite_sessions: Factory, vault: Path
) -> None:
    start()
    settled(sqlite_sessions, vault, "ready.md")
    for expected, text in enumerate(("A", "B", "A"), start=1):
        write(vault, "n.md", text)
        wait_until(
            lambda n=expected: len(events(sqlite_sessions, "n.md")) == n, what=f"change {expected}"
        )
    found = events(sqlite_sessions, "n.md")
    assert len({e["message_id"] for e in found}) == 3
    assert found[0]["content_hash"] == found[2]["content_hash"]
    assert [e["sequence"] for e in found] == sorted({e["sequence"] for e in found})


def test_reconcile_on_both_databases_and_a_rescan_publishes_nothing(
    sessions: Factory, vault: Path
) -> None:
    write(vault, "a.md", "# A")
    write(vault, "b/c.md", "# C")
    watcher = VaultWatcher(sessions, config(vault))
    assert watcher.reconcile() == 2
    assert VaultWatcher(sessions, config(vault)).reconcile() == 0  # a restart: nothing new
    (vault / "a.md").unlink()
    write(vault, "a.md", "# A again")
    restarted = VaultWatcher(sessions, config(vault))
    assert restarted.reconcile() == 1
    with sessions() as session:
        state = {row.path: row.sequence for row in session.scalars(select(PublishedFile))}
    assert state == {"a.md": 3, "b/c.md": 2}
    assert [e["sequence"] for e in outbox_events(sessions)] == [1, 2, 3]


def test_a_scan_of_several_transactions_keeps_order_moves_and_deletes_on_both_databases(
    sessions: Factory, vault: Path
) -> None:
    count = EVENTS_PER_TRANSACTION * 2 + 50
    for number in range(count):
        write(vault, f"notes/{number:04}.md", f"# Note {number}")
    assert VaultWatcher(sessions, config(vault)).reconcile() == count
    os.rename(vault / "notes/0001.md", vault / "moved.md")
    (vault / "notes/0002.md").unlink()
    assert VaultWatcher(sessions, config(vault)).reconcile() == 2
    found = outbox_events(sessions)
    # The outbox ids follow the events' sequence: the relay publishes them in that order.
    assert [e["sequence"] for e in found] == list(range(1, count + 3))
    assert [(e["event_type"], e.get("old_path")) for e in found[-2:]] == [
        ("vault.file.moved", "notes/0001.md"),
        ("vault.file.deleted", None),
    ]
    with sessions() as session:
        state = {row.path: row.content_hash for row in session.scalars(select(PublishedFile))}
    assert len(state) == count + 1
    assert state["notes/0001.md"] is None and state["notes/0002.md"] is None
    assert state["moved.md"] == found[-2]["content_hash"] is not None
    # A transaction of deletes only: every content hash it records is NULL.
    (vault / "notes/0003.md").unlink()
    (vault / "notes/0004.md").unlink()
    assert VaultWatcher(sessions, config(vault)).reconcile() == 2
    with sessions() as session:
        gone = session.scalars(
            select(PublishedFile.path).where(PublishedFile.content_hash.is_(None))
        ).all()
    assert sorted(gone) == [f"notes/000{n}.md" for n in range(1, 5)]


def test_sigterm_stops_the_command_with_exit_0(
    weavenn_bin: Path, vault: Path, migrated_sqlite_url: str
) -> None:
    env = {**os.environ, "DATABASE_URL": migrated_sqlite_url, "VAULT_PATH": str(vault)}
    write(vault, "before.md", "# before")
    process = subprocess.Popen(
        [str(weavenn_bin), "watch"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        from weavenn_cli.runtime.db.engine import make_engine, session_factory

        factory = session_factory(make_engine(migrated_sqlite_url))
        wait_until(lambda: events(factory, "before.md"), what="initial scan by the command")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "vault.file.created before.md" in stderr and "stopped after publishing 1 event" in stderr


def test_changes_wait_out_an_unreachable_database(
    migrated_pg_url: str, vault: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import psycopg

    from tests.support import PG_ADMIN_URL
    from weavenn_cli.runtime.db.engine import make_engine, session_factory

    database = migrated_pg_url.rsplit("/", 1)[1]
    factory = session_factory(make_engine(migrated_pg_url))
    watcher = VaultWatcher(factory, config(vault))
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    try:
        assert watcher.ready.wait(15)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
        write(vault, "during outage.md", "# written while the database was away")
        wait_until(lambda: "cannot publish" in caplog.text, what="a failed publish attempt")
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        wait_until(lambda: events(factory, "during outage.md"), what="the event after the outage")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=10)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
