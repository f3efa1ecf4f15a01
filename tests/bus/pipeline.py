"""The whole pipeline in real processes: `weavenn watch` (with its relay) → bus →
`weavenn consume mcp-sync` → shadow cache; and the cache `weavenn vault index` builds from the
same files, as the reference the pipeline must match exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, func, select

from weavenn_cli.runtime.db.engine import parse_database_url
from weavenn_cli.runtime.db.models import Note, NoteHeading, NoteLink, NoteTag

BIN = Path(sys.executable).parent / "weavenn"


def note_text(number: int, count: int, version: int = 0) -> str:
    return (
        f"---\ntitle: Note {number} v{version}\ntags: [pipeline, v{version}]\n---\n"
        f"# Note {number}\n\nSee [[n{(number + 1) % count}]] and [[n{(number * 7) % count}|seven]],"
        f" not [[missing-{number}]]. #topic/{number % 10}\n\n## Details\n\nversion {version}\n"
    )


def write_notes(vault: Path, numbers: range, count: int, version: int = 0) -> None:
    for number in numbers:
        path = vault / f"notes/{number // 100}/n{number}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(note_text(number, count, version), encoding="utf-8")


def snapshot(database_url: str) -> dict[str, object]:
    """Everything the cache says about the notes, comparable across databases."""
    engine = create_engine(parse_database_url(database_url))
    try:
        with engine.connect() as connection:
            notes = sorted(
                connection.execute(select(Note.path, Note.content_hash, Note.title)).all()
            )
            tags = sorted(
                connection.execute(
                    select(Note.path, NoteTag.tag_key).join(NoteTag, NoteTag.note_id == Note.id)
                ).all()
            )
            headings = sorted(
                connection.execute(
                    select(Note.path, NoteHeading.position, NoteHeading.text).join(
                        NoteHeading, NoteHeading.note_id == Note.id
                    )
                ).all()
            )
            links = sorted(
                connection.execute(
                    select(
                        Note.path, NoteLink.position, NoteLink.target, NoteLink.resolved_path
                    ).join(NoteLink, NoteLink.note_id == Note.id)
                ).all(),
                key=repr,
            )
    finally:
        engine.dispose()
    return {"notes": notes, "tags": tags, "headings": headings, "links": links}


def note_count(database_url: str) -> int:
    engine = create_engine(parse_database_url(database_url))
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(Note)) or 0)
    finally:
        engine.dispose()


def reference(vault: Path, database_url: str) -> dict[str, object]:
    """The cache `weavenn vault index` builds from the files (`database_url` at head)."""
    env = {**os.environ, "DATABASE_URL": database_url, "VAULT_PATH": str(vault)}
    subprocess.run([str(BIN), "vault", "index"], env=env, check=True, capture_output=True)
    return snapshot(database_url)


@contextmanager
def weavenn_process(*args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A long-running `weavenn` command, stopped with SIGTERM (and killed if it hangs)."""
    process = subprocess.Popen(
        [str(BIN), *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()
