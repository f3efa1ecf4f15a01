"""`weavenn migrate verify`: compare two databases row by row without moving every row.

Each database summarises key ranges itself: the number of rows and the sum of a 64-bit hash
of every row's canonical text (see `values.py`). PostgreSQL computes the hash in SQL (md5);
SQLite through a Python function registered on its connection, inside the engine, so only the
summaries come back. Ranges whose summaries differ are split again at keys sampled inside
them, until a range is small enough to compare key by key; only then do keys and hashes, and
finally the values of the rows that differ, reach the client.

Ranges are ordered by the bytes of the key (SQLite's BINARY collation, `COLLATE "C"` on
PostgreSQL), so both engines put every key in the same range.
"""

from __future__ import annotations

import hashlib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from weavenn_cli.runtime.db.engine import describe_url
from weavenn_cli.runtime.db.models import DualWriteFailure, VerifyRun
from weavenn_cli.runtime.db.types import utcnow
from weavenn_cli.runtime.errors import UsageError
from weavenn_cli.runtime.migration.access import (
    first_line,
    is_postgres,
    open_engine,
    quote,
    raw_connection,
    upsert_statement,
)
from weavenn_cli.runtime.migration.tables import (
    TableSpec,
    require_at_head,
    require_distinct,
    require_tables,
)
from weavenn_cli.runtime.migration.values import (
    Kind,
    canonical,
    pg_canonical_sql,
    python_converter,
)

TOP_SEGMENTS = 128
FANOUT = 32
LEAF_ROWS = 256
# Under dual-write a row reaches the second database a moment after the first one committed
# it: leaves that differ are read again after these pauses before their rows are reported.
# Only a few leaves: many differing leaves are real differences, not writes in flight.
RECHECK_DELAYS = (0.05, 0.25)
RECHECK_MAX_LEAVES = 4

Key = tuple[Any, ...]
Range = tuple[Key | None, Key | None]  # [low, high); None is open
Summary = tuple[int, int]  # rows, sum of row hashes
T = TypeVar("T")


@dataclass
class TableDiff:
    source_rows: int = 0
    target_rows: int = 0
    missing_in_target: list[Any] = field(default_factory=list)
    missing_in_source: list[Any] = field(default_factory=list)
    different: list[dict[str, Any]] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return len(self.missing_in_target) + len(self.missing_in_source) + len(self.different)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "missing_in_target": self.missing_in_target,
            "missing_in_source": self.missing_in_source,
            "different": self.different,
        }


@dataclass
class VerifyStats:
    rows_sent_to_client: int = 0
    ranges_compared: int = 0
    seconds: float = 0.0


@dataclass
class VerifyReport:
    source: str
    target: str
    tables: dict[str, TableDiff] = field(default_factory=dict)
    stats: VerifyStats = field(default_factory=VerifyStats)
    repaired: int = 0
    first_pass: dict[str, TableDiff] | None = None

    @property
    def identical(self) -> bool:
        return all(diff.differences == 0 for diff in self.tables.values())

    @property
    def differences(self) -> int:
        return sum(diff.differences for diff in self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        rows = sum(d.source_rows + d.target_rows for d in self.tables.values())
        data: dict[str, Any] = {
            "identical": self.identical,
            "tables": {name: diff.as_dict() for name, diff in self.tables.items()},
            "stats": {
                "rows_in_tables": rows,
                "rows_sent_to_client": self.stats.rows_sent_to_client,
                "sent_fraction": round(self.stats.rows_sent_to_client / rows, 6) if rows else 0,
                "ranges_compared": self.stats.ranges_compared,
                "seconds": round(self.stats.seconds, 3),
            },
        }
        if self.first_pass is not None:
            data["repaired"] = self.repaired
            data["before_repair"] = {n: d.as_dict() for n, d in self.first_pass.items()}
        return data


@dataclass(frozen=True)
class VerifyResult:
    """The last recorded verify run, for `migrate status` and rollout gates."""

    identical: bool
    differences: int
    tables: list[str]
    source: str
    target: str
    finished_at: datetime


# -- the two sides ---------------------------------------------------------------------------


def _row_hash(text: str) -> int:
    return int.from_bytes(hashlib.md5(text.encode("utf-8")).digest()[:8], "big", signed=True)


def _field_function(kind: Kind) -> Callable[[Any], str]:
    """One value as its part of the row text: `len:text`, NULL as `-` (unambiguous).

    The forms SQLite holds nearly always (text, SQLAlchemy timestamps, 0/1) take a short
    path: this runs once per row and column.
    """
    render = canonical(kind)

    def field(value: Any) -> str:
        text = render(value)
        return "-" if text is None else f"{len(text)}:{text}"

    if kind is Kind.TEXT:
        return lambda v: f"{len(v)}:{v}" if v.__class__ is str else field(v)
    if kind in (Kind.TIMESTAMPTZ, Kind.TIMESTAMP):
        return lambda v: (
            "26:" + v
            if v.__class__ is str and len(v) == 26 and v[10] == " " and v[19] == "."
            else field(v)
        )
    if kind is Kind.BOOLEAN:
        return lambda v: "1:t" if v == 1 else "1:f" if v == 0 else field(v)
    return field


def row_text_function(kinds: Sequence[Kind]) -> Callable[..., str]:
    """The canonical text of a row from its stored values (PostgreSQL builds the same in SQL)."""
    fields = [_field_function(kind) for kind in kinds]

    def row_text(*values: Any) -> str:
        return "".join([field(value) for field, value in zip(fields, values, strict=True)])

    return row_text


class _Side(ABC):
    """One database during a verify; every call runs on the side's own thread."""

    def __init__(self, engine: sa.Engine, spec: TableSpec, where: str | None) -> None:
        self.engine = engine
        self.spec = spec
        self.where = where
        self.rows_sent = 0
        self.executor = ThreadPoolExecutor(max_workers=1)
        self._connection: Any = None
        self._raw: Any = None
        q = self.q
        self.table = q(spec.name)
        self.keys = [q(name) for name in spec.key_names]

    def q(self, name: str) -> str:
        return quote(self.engine, name)

    def submit(self, function: Callable[..., T], *args: Any) -> Future[T]:
        return self.executor.submit(function, *args)

    def close(self) -> None:
        def release() -> None:
            if self._raw is not None:
                self._raw.__exit__(None, None, None)

        self.executor.submit(release).result()
        self.executor.shutdown()

    @property
    def connection(self) -> Any:
        if self._connection is None:
            self._raw = raw_connection(self.engine)
            self._connection = self._raw.__enter__()
            self.prepare(self._connection)
        return self._connection

    @abstractmethod
    def prepare(self, connection: Any) -> None:
        """Per-connection setup (SQLite registers its hash functions)."""

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, tuple(params))
            rows = [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()
        self.rows_sent += len(rows)
        return rows

    # SQL pieces -------------------------------------------------------------------------

    param = "?"

    def key_expr(self) -> str:
        if len(self.keys) == 1:
            return self.ordered(self.keys[0], self.spec.key_kinds[0])
        inner = ", ".join(
            self.ordered(k, kind) for k, kind in zip(self.keys, self.spec.key_kinds, strict=True)
        )
        return f"({inner})"

    def ordered(self, column: str, kind: Kind) -> str:
        return column

    def key_param(self) -> str:
        if len(self.keys) == 1:
            return self.param
        return "(" + ", ".join([self.param] * len(self.keys)) + ")"

    def conditions(self, span: Range) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        low, high = span
        if low is not None:
            parts.append(f"{self.key_expr()} >= {self.key_param()}")
            params.extend(low)
        if high is not None:
            parts.append(f"{self.key_expr()} < {self.key_param()}")
            params.extend(high)
        if self.where:
            parts.append(f"({self.where_sql})")
        return (" WHERE " + " AND ".join(parts)) if parts else "", params

    @property
    def where_sql(self) -> str:
        return self.where or ""

    def order_by(self) -> str:
        return ", ".join(
            self.ordered(k, kind) for k, kind in zip(self.keys, self.spec.key_kinds, strict=True)
        )

    # operations -------------------------------------------------------------------------

    def check_where(self) -> None:
        if not self.where:
            return
        try:
            self.fetch(f"SELECT 1 FROM {self.table} WHERE ({self.where_sql}) LIMIT 0")
        except Exception as error:
            raise UsageError(
                f"--where {self.where!r} failed on {self.engine.dialect.name}: "
                f"{first_line(error)}; it must be valid SQL on both databases"
            ) from None

    def count(self) -> int:
        where, params = self.conditions((None, None))
        return int(self.fetch(f"SELECT count(*) FROM {self.table}{where}", params)[0][0])

    def boundaries(self, span: Range, every: int) -> list[Key]:
        """Every `every`-th key inside `span`, in byte order."""
        where, params = self.conditions(span)
        keys = ", ".join(self.keys)
        sql = (
            f"SELECT {keys} FROM (SELECT {keys}, row_number() OVER (ORDER BY {self.order_by()}) "
            f"AS rn FROM {self.table}{where}) numbered "
            f"WHERE rn - (rn / {self.param}) * {self.param} = 0 ORDER BY rn"
        )
        return [tuple(row) for row in self.fetch(sql, [*params, every, every])]

    @abstractmethod
    def summaries(self, spans: list[Range]) -> list[Summary]:
        """Rows and hash sum of each span, computed in the database."""

    @abstractmethod
    def hashes(self, spans: list[Range]) -> dict[Key, tuple[Key, int]]:
        """Every row of the spans: canonical key → (stored key, row hash)."""

    @abstractmethod
    def canonical_rows(self, keys: list[Key]) -> dict[Key, list[str | None]]:
        """The canonical text of each column of these rows."""

    def rows(self, keys: list[Key]) -> list[tuple[Any, ...]]:
        """The stored rows with these keys (for repair)."""
        columns = ", ".join(self.q(name) for name in self.spec.column_names)
        return self._by_keys(columns, keys)

    def _by_keys(self, columns: str, keys: list[Key]) -> list[tuple[Any, ...]]:
        found: list[tuple[Any, ...]] = []
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            if len(self.keys) == 1:
                match = f"{self.keys[0]} IN ({', '.join([self.param] * len(batch))})"
            else:
                rows = ", ".join([f"({', '.join([self.param] * len(self.keys))})"] * len(batch))
                match = f"({', '.join(self.keys)}) IN (VALUES {rows})"
            found += self.fetch(
                f"SELECT {columns} FROM {self.table} WHERE {match}",
                [value for key in batch for value in key],
            )
        return found


class _SQLiteSide(_Side):
    """SQLite: a Python aggregate registered on the connection hashes every row in the
    engine; only its sum comes back."""

    def prepare(self, connection: Any) -> None:
        row_text = row_text_function(self.spec.kinds)
        width = len(self.spec.kinds)

        class HashSum:
            def __init__(self) -> None:
                self.total = 0

            def step(self, *values: Any) -> None:
                self.total += _row_hash(row_text(*values))

            def finalize(self) -> str:
                return str(self.total)  # it outgrows SQLite's 64-bit integers

        connection.create_aggregate("weavenn_hashsum", width, HashSum)
        connection.create_function(
            "weavenn_rowhash", width, lambda *v: _row_hash(row_text(*v)), deterministic=True
        )

    @property
    def hash_args(self) -> str:
        """The arguments of the hash functions: every column."""
        return ", ".join(self.q(name) for name in self.spec.column_names)

    def summaries(self, spans: list[Range]) -> list[Summary]:
        results = []
        for span in spans:
            where, params = self.conditions(span)
            rows, total = self.fetch(
                f"SELECT count(*), weavenn_hashsum({self.hash_args}) FROM {self.table}{where}",
                params,
            )[0]
            results.append((int(rows), int(total or 0)))
        return results

    def hashes(self, spans: list[Range]) -> dict[Key, tuple[Key, int]]:
        found: dict[Key, tuple[Key, int]] = {}
        width = len(self.keys)
        for span in spans:
            where, params = self.conditions(span)
            sql = (
                f"SELECT {', '.join(self.keys)}, weavenn_rowhash({self.hash_args}) "
                f"FROM {self.table}{where}"
            )
            for row in self.fetch(sql, params):
                key = tuple(row[:width])
                found[canonical_key(self.spec, key)] = (key, int(row[width]))
        return found

    def canonical_rows(self, keys: list[Key]) -> dict[Key, list[str | None]]:
        renders = [canonical(kind) for kind in self.spec.kinds]
        result = {}
        for row in self.rows(keys):
            key = self.spec.key_of(row)
            values = [render(value) for render, value in zip(renders, row, strict=True)]
            result[canonical_key(self.spec, key)] = values
        return result


class _PostgresSide(_Side):
    """PostgreSQL: canonical text and md5 in SQL; one pass per level with width_bucket."""

    param = "%s"

    def prepare(self, connection: Any) -> None:
        """Nothing to register: PostgreSQL renders and hashes rows in SQL."""

    @property
    def where_sql(self) -> str:
        return (self.where or "").replace("%", "%%")  # psycopg's placeholders use %

    def ordered(self, column: str, kind: Kind) -> str:
        return f'{column} COLLATE "C"' if kind is Kind.TEXT else column

    def canonical_exprs(self) -> list[str]:
        return [
            pg_canonical_sql(kind, self.q(name))
            for name, kind in zip(self.spec.column_names, self.spec.kinds, strict=True)
        ]

    def hash_sql(self) -> str:
        fields = ", ".join(
            f"coalesce(length(c{i})::text || ':' || c{i}, '-')" for i in range(len(self.spec.kinds))
        )
        return f"('x' || substr(md5(concat({fields})), 1, 16))::bit(64)::bigint"

    def fenced(self, span_sql: str, extra: str = "") -> str:
        """Canonical columns c0..cn of the selected rows, each computed once (OFFSET 0)."""
        exprs = ", ".join(f"{expr} AS c{i}" for i, expr in enumerate(self.canonical_exprs()))
        keys = ", ".join(f"{k} AS k{i}" for i, k in enumerate(self.keys))
        return f"SELECT {keys}{extra}, {exprs} FROM {self.table}{span_sql} OFFSET 0"

    def _buckets(self, spans: list[Range]) -> tuple[str, list[Any], list[int]]:
        """A width_bucket expression that puts each of `spans` in a bucket of its own."""
        points = sorted({bound[0] for span in spans for bound in span if bound is not None})
        column = self.spec.key_names[0]
        array_type = self.spec.table.c[column].type.compile(self.engine.dialect)
        expr = f"width_bucket({self.key_expr()}, {self.param}::{array_type}[])"
        numbers = [0 if low is None else points.index(low[0]) + 1 for low, _ in spans]
        return expr, points, numbers

    def _single_pass(self, spans: list[Range]) -> bool:
        return len(self.keys) == 1 and len(spans) > 1

    def summaries(self, spans: list[Range]) -> list[Summary]:
        if not self._single_pass(spans):
            return [self._summary(span) for span in spans]
        expr, points, numbers = self._buckets(spans)
        where, params = self.conditions((None, None))
        filter_sql = f"{where} {'AND' if where else 'WHERE'} {expr} = ANY({self.param})"
        inner = self.fenced(filter_sql, extra=f", {expr} AS b")
        rows = self.fetch(
            f"SELECT b, count(*), sum({self.hash_sql()}) FROM ({inner}) s GROUP BY b",
            [points, *params, points, numbers],
        )
        by_bucket = {int(b): (int(n), int(total)) for b, n, total in rows}
        return [by_bucket.get(number, (0, 0)) for number in numbers]

    def _summary(self, span: Range) -> Summary:
        where, params = self.conditions(span)
        rows, total = self.fetch(
            f"SELECT count(*), sum({self.hash_sql()}) FROM ({self.fenced(where)}) s", params
        )[0]
        return int(rows), int(total or 0)

    def hashes(self, spans: list[Range]) -> dict[Key, tuple[Key, int]]:
        width = len(self.keys)
        keys = ", ".join(f"k{i}" for i in range(width))
        rows: list[tuple[Any, ...]] = []
        if self._single_pass(spans):
            expr, points, numbers = self._buckets(spans)
            where, params = self.conditions((None, None))
            filter_sql = f"{where} {'AND' if where else 'WHERE'} {expr} = ANY({self.param})"
            rows = self.fetch(
                f"SELECT {keys}, {self.hash_sql()} FROM ({self.fenced(filter_sql)}) s",
                [*params, points, numbers],
            )
        else:
            for span in spans:
                where, params = self.conditions(span)
                rows += self.fetch(
                    f"SELECT {keys}, {self.hash_sql()} FROM ({self.fenced(where)}) s", params
                )
        found = {}
        for row in rows:
            key = tuple(row[:width])
            found[canonical_key(self.spec, key)] = (key, int(row[width]))
        return found

    def canonical_rows(self, keys: list[Key]) -> dict[Key, list[str | None]]:
        width = len(self.keys)
        columns = ", ".join([*self.keys, *self.canonical_exprs()])
        return {
            canonical_key(self.spec, tuple(row[:width])): list(row[width:])
            for row in self._by_keys(columns, keys)
        }


def canonical_key(spec: TableSpec, key: Key) -> Key:
    return tuple(canonical(kind)(value) for kind, value in zip(spec.key_kinds, key, strict=True))


def _side(engine: sa.Engine, spec: TableSpec, where: str | None) -> _Side:
    return (
        _PostgresSide(engine, spec, where)
        if is_postgres(engine)
        else _SQLiteSide(engine, spec, where)
    )


# -- the comparison --------------------------------------------------------------------------


class _TableComparison:
    def __init__(self, source: _Side, target: _Side, stats: VerifyStats) -> None:
        self.source = source
        self.target = target
        self.spec = source.spec
        self.stats = stats
        self.diff = TableDiff()

    def both(self, method: str, *args: Any) -> tuple[Any, Any]:
        first = self.source.submit(getattr(self.source, method), *args)
        second = self.target.submit(getattr(self.target, method), *args)
        return first.result(), second.result()

    def run(self) -> TableDiff:
        self.both("check_where")
        sampler = self.target if isinstance(self.source, _PostgresSide) else self.source
        total = sampler.submit(sampler.count).result()
        spans: list[Range] = [(None, None)]
        if total > LEAF_ROWS:
            spans = self.split((None, None), sampler, total, TOP_SEGMENTS)
        leaves: list[Range] = []
        first_level = True
        while spans:
            source_sums, target_sums = self.both("summaries", spans)
            self.stats.ranges_compared += len(spans)
            if first_level:
                self.diff.source_rows = sum(rows for rows, _ in source_sums)
                self.diff.target_rows = sum(rows for rows, _ in target_sums)
                first_level = False
            spans = self.next_level(spans, source_sums, target_sums, leaves)
        if leaves:
            self.compare_leaves(leaves)
        return self.diff

    def next_level(
        self,
        spans: list[Range],
        source_sums: list[Summary],
        target_sums: list[Summary],
        leaves: list[Range],
    ) -> list[Range]:
        children: list[Range] = []
        for span, mine, theirs in zip(spans, source_sums, target_sums, strict=True):
            if mine == theirs:
                continue
            rows = max(mine[0], theirs[0])
            if rows <= LEAF_ROWS:
                leaves.append(span)
                continue
            sampler = self.source if mine[0] >= theirs[0] else self.target
            children += self.split(span, sampler, rows, FANOUT)
        return children

    def split(self, span: Range, sampler: _Side, rows: int, parts: int) -> list[Range]:
        every = max(2, math.ceil(rows / parts))
        points = sampler.submit(sampler.boundaries, span, every).result()
        edges: list[Key | None] = [span[0], *points, span[1]]
        return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]

    def compare_leaves(self, leaves: list[Range]) -> None:
        mine, theirs = self.both("hashes", leaves)
        for delay in RECHECK_DELAYS:
            if _same_rows(mine, theirs) or len(leaves) > RECHECK_MAX_LEAVES:
                break
            _settle(delay)
            mine, theirs = self.both("hashes", leaves)
        only_source = [mine[k][0] for k in mine if k not in theirs]
        only_target = [theirs[k][0] for k in theirs if k not in mine]
        changed = [k for k in mine if k in theirs and mine[k][1] != theirs[k][1]]
        self.diff.missing_in_target = sorted(_report_key(k) for k in only_source)
        self.diff.missing_in_source = sorted(_report_key(k) for k in only_target)
        if changed:
            originals = [mine[k][0] for k in changed]
            source_rows, target_rows = self.both("canonical_rows", originals)
            names = self.spec.column_names
            for k in sorted(changed):
                columns = [
                    name
                    for name, a, b in zip(names, source_rows[k], target_rows[k], strict=True)
                    if a != b
                ]
                self.diff.different.append({"key": _report_key(mine[k][0]), "columns": columns})


def _same_rows(mine: dict[Key, tuple[Key, int]], theirs: dict[Key, tuple[Key, int]]) -> bool:
    """Same canonical keys with the same row hashes (the keys as read may differ in type)."""
    return mine.keys() == theirs.keys() and all(mine[k][1] == theirs[k][1] for k in mine)


def _settle(seconds: float) -> None:
    """Give a write in flight between the two databases the time to land."""
    time.sleep(seconds)


def _report_key(key: Key) -> Any:
    values = [value if isinstance(value, (int, str)) else str(value) for value in key]
    return values[0] if len(values) == 1 else values


def _keys_from_report(keys: list[Any]) -> list[Key]:
    return [tuple(key) if isinstance(key, list) else (key,) for key in keys]


# -- entry points ----------------------------------------------------------------------------


def verify(
    source_url: str,
    target_url: str,
    specs: Sequence[TableSpec],
    *,
    where: str | None = None,
    repair: bool = False,
    delete_extra: bool = False,
) -> VerifyReport:
    """Compare `specs` between source and target; with `repair`, fix the target and compare
    again. Every run is recorded in the target's `verify_runs`."""
    if delete_extra and not repair:
        raise UsageError("--delete-extra only goes with --repair")
    if where and len(specs) != 1:
        raise UsageError("--where is a condition on one table: name it with --table")
    require_distinct(source_url, target_url)
    require_at_head(target_url, "target")
    started_at = utcnow()
    with open_engine(source_url) as source, open_engine(target_url) as target:
        require_tables(source, specs, "source")
        report = _compare(source, target, specs, where)
        if repair and not report.identical:
            report.first_pass = report.tables
            report.repaired = _repair(source, target, specs, report.tables, delete_extra)
            rerun = _compare(source, target, specs, where)
            rerun.stats.rows_sent_to_client += report.stats.rows_sent_to_client
            rerun.stats.ranges_compared += report.stats.ranges_compared
            rerun.first_pass, rerun.repaired = report.tables, report.repaired
            report = rerun
        report.stats.seconds = (utcnow() - started_at).total_seconds()
        _record(source, target, report, specs, where, started_at)
    return report


def _compare(
    source: sa.Engine, target: sa.Engine, specs: Sequence[TableSpec], where: str | None
) -> VerifyReport:
    report = VerifyReport(describe_url(source.url), describe_url(target.url))
    for spec in specs:
        mine, theirs = _side(source, spec, where), _side(target, spec, where)
        try:
            report.tables[spec.name] = _TableComparison(mine, theirs, report.stats).run()
        finally:
            report.stats.rows_sent_to_client += mine.rows_sent + theirs.rows_sent
            mine.close()
            theirs.close()
    return report


def _repair(
    source: sa.Engine,
    target: sa.Engine,
    specs: Sequence[TableSpec],
    diffs: dict[str, TableDiff],
    delete_extra: bool,
) -> int:
    """Make the target equal to the source for the rows found different; return rows fixed."""
    fixed = 0
    for spec in specs:
        diff = diffs[spec.name]
        keys = _keys_from_report(diff.missing_in_target + [item["key"] for item in diff.different])
        side = _side(source, spec, None)
        try:
            rows = side.submit(side.rows, keys).result() if keys else []
        finally:
            side.close()
        converters = [python_converter(kind) for kind in spec.kinds]
        params = [
            {
                name: convert(value)
                for name, convert, value in zip(spec.column_names, converters, row, strict=True)
            }
            for row in rows
        ]
        with target.begin() as connection:
            if params:
                upsert = upsert_statement(target, spec.writable_table, "replace")
                connection.execute(upsert, params)
                fixed += len(params)
            if delete_extra and diff.missing_in_source:
                extra = _keys_from_report(diff.missing_in_source)
                fixed += connection.execute(
                    sa.delete(spec.table).where(_key_in(spec, extra))
                ).rowcount
    return fixed


def _key_in(spec: TableSpec, keys: list[Key]) -> sa.ColumnElement[bool]:
    columns = [spec.table.c[name] for name in spec.key_names]
    if len(columns) == 1:
        return columns[0].in_([key[0] for key in keys])
    return sa.tuple_(*columns).in_(keys)


def _record(
    source: sa.Engine,
    target: sa.Engine,
    report: VerifyReport,
    specs: Sequence[TableSpec],
    where: str | None,
    started_at: datetime,
) -> None:
    with target.begin() as connection:
        connection.execute(
            sa.insert(cast(sa.Table, VerifyRun.__table__)).values(
                source=report.source,
                target=report.target,
                tables=[spec.name for spec in specs],
                where=where,
                identical=report.identical,
                differences=report.differences,
                repaired=report.repaired,
                report=report.as_dict(),
                started_at=started_at,
                finished_at=utcnow(),
            )
        )
    identical = [name for name, diff in report.tables.items() if diff.differences == 0]
    if identical and not where:
        for engine in (source, target):
            _resolve_dual_write_failures(engine, identical, started_at)


def _resolve_dual_write_failures(engine: sa.Engine, tables: list[str], before: datetime) -> None:
    """Failures recorded before a verify found their table identical need no replay."""
    failures = cast(sa.Table, DualWriteFailure.__table__)
    if not sa.inspect(engine).has_table(failures.name):
        return
    with engine.begin() as connection:
        connection.execute(
            sa.update(failures)
            .where(
                failures.c.resolved_at.is_(None),
                failures.c.table_name.in_(tables),
                failures.c.created_at < before,
            )
            .values(resolved_at=utcnow())
        )


def last_verify_result(url: str) -> VerifyResult | None:
    """The most recent verify recorded in the database at `url`, or None."""
    runs = cast(sa.Table, VerifyRun.__table__)
    with open_engine(url) as engine, engine.connect() as connection:
        row = (
            connection.execute(
                sa.select(runs).order_by(runs.c.finished_at.desc(), runs.c.id.desc()).limit(1)
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    return VerifyResult(
        identical=bool(row["identical"]),
        differences=int(row["differences"]),
        tables=list(row["tables"]),
        source=row["source"],
        target=row["target"],
        finished_at=row["finished_at"],
    )
