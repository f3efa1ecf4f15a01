"""Every column type, both directions, with awkward values: canonical forms agree between
Python (SQLite side) and PostgreSQL's SQL, and backfill + verify round-trip them."""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.migration.conftest import pg_query, sqlite_path
from weavenn_cli.runtime.db.engine import make_engine
from weavenn_cli.runtime.db.types import PortableJSON, UTCDateTime
from weavenn_cli.runtime.migration import backfill, verify
from weavenn_cli.runtime.migration.tables import spec_for
from weavenn_cli.runtime.migration.values import Kind, canonical, pg_canonical_sql

metadata = sa.MetaData()
EVERY_TYPE = sa.Table(
    "every_type",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("text", sa.Text),
    sa.Column("short", sa.String(40)),
    sa.Column("number", sa.Integer),
    sa.Column("big", sa.BigInteger),
    sa.Column("flag", sa.Boolean),
    sa.Column("ratio", sa.Float),
    sa.Column("double", sa.Double),
    sa.Column("at", UTCDateTime),
    sa.Column("naive", sa.DateTime),
    sa.Column("day", sa.Date),
    sa.Column("doc", PortableJSON),
    sa.Column("blob", sa.LargeBinary),
    sa.Column("uid", sa.Uuid),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
EPOCH = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC).timestamp()
DOCS = [
    '{"b": 1, "a": {"y": [1, 2.50, {"k": "é\\n\\u001f"}], "x": null}, "aa": true}',
    "[]",
    '"just text"',
    "1e2",
    '{"dup": 1, "dup": 2, "": -0, "ключ": [false, 0.000]}',
]
# Values as a SQLite database may hold them: text, epoch and ISO timestamps, 0/1, JSON text.
SQLITE_ROWS = [
    ("a", "plain", "x", 0, 2**62, 1, 0.1, 1e300, "2024-03-01 12:00:00.000001",
     "2024-03-01 12:00:00.000000", "2024-02-29", DOCS[0], b"\x00\xff", uuid.UUID(int=1).hex),
    ("b", "", "", -5, -(2**62), 0, 123456.0, -2.5e-300, EPOCH,
     "1999-12-31 23:59:59.500000", "1970-01-01", DOCS[1], b"", uuid.UUID(int=2).hex),
    ("c", "tab\there \"quoted\" back\\slash, (paren)", "😀 emoji", None, None, None, math.inf,
     None, "2024-03-01T17:30:00+05:30", None, None, DOCS[2], None, None),
    ("d", None, "日本語", 7, 7, 1, -math.inf, 5e-324, "2024-03-01T12:00:00Z",
     "2024-03-01 00:00:00.000000", "2024-03-01", DOCS[3], b"bytes", uuid.UUID(int=4).hex),
    ("e", "line\nbreak", "  spaces  ", 1, 1, 0, 0.30000000000000004, 2.0**-1074,
     "2024-03-01 12:00:00", "2024-03-01 12:00:00.000000", "2024-03-01", DOCS[4], b"\n",
     uuid.UUID(int=5).hex),
]  # fmt: skip


def _create(url: str) -> None:
    engine = make_engine(url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


def _fill_sqlite(url: str) -> None:
    columns = [c.name for c in EVERY_TYPE.columns]
    with sqlite3.connect(sqlite_path(url)) as connection:
        connection.executemany(
            f"INSERT INTO every_type ({', '.join(columns)}) VALUES ({', '.join('?' * 15)})",
            [(*row, "2024-03-01 12:00:00.000000") for row in SQLITE_ROWS],
        )


@pytest.mark.parametrize(
    ("kind", "pg_value", "pg_type", "python_value"),
    [
        (Kind.TIMESTAMPTZ, "2024-03-01 14:00:00.000007+02", "timestamptz",
         "2024-03-01T12:00:00.000007"),
        (Kind.TIMESTAMPTZ, "2024-03-01 12:00:00+00", "timestamptz", 1709294400),
        (Kind.TIMESTAMPTZ, "0999-01-02 03:04:05+00", "timestamptz", "0999-01-02 03:04:05"),
        (Kind.TIMESTAMP, "2024-03-01 12:00:00.5", "timestamp", "2024-03-01 12:00:00.500000"),
        (Kind.DATE, "2024-02-29", "date", date(2024, 2, 29)),
        (Kind.BOOLEAN, "true", "boolean", 1),
        (Kind.BOOLEAN, "false", "boolean", "false"),
        (Kind.FLOAT, "0.1", "float8", 0.1),
        (Kind.FLOAT, "-Infinity", "float8", -math.inf),
        (Kind.FLOAT, "1e-320", "float8", 1e-320),
        (Kind.INTEGER, "-9223372036854775808", "int8", -(2**63)),
        (Kind.TEXT, "", "text", ""),
        (Kind.BYTES, "\\x00ff", "bytea", b"\x00\xff"),
        (Kind.UUID, "00000000-0000-0000-0000-00000000000a", "uuid", uuid.UUID(int=10).hex),
        *[(Kind.JSON, doc, "jsonb", doc) for doc in DOCS],
    ],
)  # fmt: skip
def test_python_and_postgres_render_the_same_canonical_text(
    migrated_pg_url, kind, pg_value, pg_type, python_value
) -> None:
    sql = f"SELECT {pg_canonical_sql(kind, f'CAST(%s AS {pg_type})')}"
    (rendered,) = pg_query(migrated_pg_url, sql, (pg_value,))[0]
    assert canonical(kind)(python_value) == rendered


def test_timestamps_of_other_zones_are_the_same_instant() -> None:
    render = canonical(Kind.TIMESTAMPTZ)
    moment = datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert render(moment) == render(moment.astimezone(timezone(timedelta(hours=-7))))
    assert render(moment) == render("2024-03-01 12:00:00.000000")
    assert render(moment) != render(moment + timedelta(microseconds=1))


def test_every_type_round_trips_sqlite_to_postgres_and_back(
    migrated_sqlite_url, migrated_pg_url, tmp_path
) -> None:
    spec = spec_for(EVERY_TYPE)
    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    from weavenn_cli.runtime import schema

    schema.upgrade(back_url)
    for url in (migrated_sqlite_url, migrated_pg_url, back_url):
        _create(url)
    _fill_sqlite(migrated_sqlite_url)

    forward = backfill.backfill(migrated_sqlite_url, migrated_pg_url, [spec])
    assert (forward.tables[0].written, forward.rejected) == (5, 0)
    assert verify.verify(migrated_sqlite_url, migrated_pg_url, [spec]).identical

    typed = dict(
        (row[0], row[1:])
        for row in pg_query(migrated_pg_url, "SELECT id, at, flag, doc, uid, day FROM every_type")
    )
    assert typed["a"][0] == datetime(2024, 3, 1, 12, 0, 0, 1, tzinfo=UTC)
    assert typed["b"][0] == datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
    assert typed["c"][0] == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert typed["a"][1] is True and typed["b"][1] is False
    assert typed["a"][2]["a"]["y"][2] == {"k": "é\n\x1f"}
    assert typed["a"][3] == uuid.UUID(int=1) and typed["a"][4] == date(2024, 2, 29)

    back = backfill.backfill(migrated_pg_url, back_url, [spec])
    assert (back.tables[0].written, back.rejected) == (5, 0)
    report = verify.verify(migrated_pg_url, back_url, [spec])
    assert report.identical, report.as_dict()
    assert verify.verify(migrated_sqlite_url, back_url, [spec]).identical
    with sqlite3.connect(sqlite_path(back_url)) as connection:
        doc = connection.execute("SELECT doc FROM every_type WHERE id = 'a'").fetchone()[0]
    assert json.loads(doc)["a"]["y"][1] == 2.5 and "2.50" in doc  # digits kept


def test_a_changed_value_of_each_type_is_found(migrated_sqlite_url, migrated_pg_url) -> None:
    spec = spec_for(EVERY_TYPE)
    for url in (migrated_sqlite_url, migrated_pg_url):
        _create(url)
    _fill_sqlite(migrated_sqlite_url)
    backfill.backfill(migrated_sqlite_url, migrated_pg_url, [spec])
    changes = {
        "a": "ratio = 0.1000000000000001",
        "b": "naive = naive + interval '1 microsecond'",
        "c": "doc = '\"just Text\"'",
        "d": "blob = 'bytez'::bytea",
        "e": "short = ' spaces  '",
    }
    for key, assignment in changes.items():
        pg_query(migrated_pg_url, f"UPDATE every_type SET {assignment} WHERE id = %s", (key,))
    report = verify.verify(migrated_sqlite_url, migrated_pg_url, [spec])
    found = {item["key"]: item["columns"] for item in report.tables["every_type"].different}
    assert found == {"a": ["ratio"], "b": ["naive"], "c": ["doc"], "d": ["blob"], "e": ["short"]}
