"""Task pages on PostgreSQL: the server writes the page's JSON, read on asyncio connections.

The list is the API's busiest route. Here PostgreSQL builds the whole answer as one text
value (the same bytes as `task_page_json`, a test checks), which the API sends on without
decoding a row, and the query runs on psycopg's asyncio connection: no SQLAlchemy around it
and no hand-off to a thread.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from psycopg.adapt import Loader

if TYPE_CHECKING:
    from psycopg import AsyncConnection

# An instant as pydantic writes it: UTC, "Z", microseconds only when there are some.
_UTC = "({0} AT TIME ZONE 'UTC')"
_INSTANT = (
    "'\"' || to_char({u}, 'YYYY-MM-DD\"T\"HH24:MI:SS') "
    "|| CASE WHEN date_trunc('second', {u}) = {u} THEN '' ELSE to_char({u}, '.US') END "
    "|| 'Z\"'"
)
# Tags element by element: jsonb's own text has a space after each comma, orjson none.
_TAGS = (
    "coalesce((SELECT '[' || string_agg(tag::text, ',' ORDER BY position) || ']' "
    "FROM jsonb_array_elements(page.tags) WITH ORDINALITY AS t(tag, position)), '[]')"
)


def _instant(column: str) -> str:
    return _INSTANT.format(u=_UTC.format(f"page.{column}"))


# One task as `Task` dumps it, fields in its order (NULL tags and flags as empty and false).
TASK_JSON = (
    "'{\"id\":' || to_json(page.id)::text"
    " || ',\"project_id\":' || to_json(page.project_id)::text"
    " || ',\"title\":' || to_json(page.title)::text"
    " || ',\"status\":' || to_json(page.status)::text"
    f" || ',\"due_date\":' || coalesce({_instant('due_date')}, 'null')"
    f" || ',\"tags\":' || {_TAGS}"
    " || ',\"completed\":' || CASE WHEN page.completed THEN 'true' ELSE 'false' END"
    f" || ',\"created_at\":' || {_instant('created_at')}"
    f" || ',\"updated_at\":' || {_instant('updated_at')}"
    " || '}'"
)


@functools.lru_cache(maxsize=256)
def page_json_sql(rows_sql: str, limit: int, offset: int) -> str:
    """The page as one JSON text, around `rows_sql` (the rows, sorted, LIMIT limit + 1).

    The tasks are written after LIMIT/OFFSET (a subquery with a LIMIT is never merged into
    the outer one), so skipped rows cost no formatting; the extra row only says whether a
    next page exists.
    """
    next_offset = f"'{offset + limit}'"
    return (
        "SELECT '{\"items\":[' || coalesce(string_agg(item, ',' ORDER BY n) "
        f'FILTER (WHERE n <= {limit}), \'\') || \'],"limit":{limit},"offset":{offset},'
        f'"next_offset":\' || CASE WHEN count(*) > {limit} THEN {next_offset} '
        "ELSE 'null' END || '}' "
        f"FROM (SELECT row_number() OVER () AS n, {TASK_JSON} AS item "
        f"FROM ({rows_sql}) AS page) AS numbered"
    )


class RawText(Loader):
    """Text values as the bytes PostgreSQL sent: the page goes out as it came in."""

    def load(self, data: Any) -> bytes:
        return bytes(data)


class PageReader:
    """Runs page queries on a few asyncio connections kept open between requests.

    Hand-written rather than psycopg_pool's: that pool connects in the background and makes a
    request wait its whole timeout while the database is down, where this one fails at once
    (an unreachable database answers 503 right away, as the SQLAlchemy pool did). Reads are
    idempotent, so a query that meets a connection cut since its last use is tried once
    more on a new one.
    """

    def __init__(self, conninfo: str, max_connections: int) -> None:
        self.conninfo = conninfo
        self.idle: list[AsyncConnection[Any]] = []
        self.slots = asyncio.Semaphore(max_connections)

    async def fetch(self, sql: str, params: dict[str, Any]) -> bytes:
        import psycopg

        try:
            return await self._fetch_once(sql, params)
        except psycopg.OperationalError:
            # The server may have restarted: every idle connection is as dead as this one.
            await self._drop_idle()
            return await self._fetch_once(sql, params)

    async def _fetch_once(self, sql: str, params: dict[str, Any]) -> bytes:
        async with self._connection() as connection:
            cursor = await connection.execute(sql, params)
            row = await cursor.fetchone()
        assert row is not None  # an aggregate without GROUP BY returns one row
        return bytes(row[0])

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        async with self.slots:
            connection = self.idle.pop() if self.idle else await self._connect()
            try:
                yield connection
            except BaseException:
                # A failed or cancelled query leaves the connection in an unknown state.
                await connection.close()
                raise
            if connection.closed:
                return
            self.idle.append(connection)

    async def _connect(self) -> AsyncConnection[Any]:
        import psycopg

        connection = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, connect_timeout=10
        )
        connection.adapters.register_loader("text", RawText)
        return connection

    async def _drop_idle(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            await connection.close()

    async def close(self) -> None:
        await self._drop_idle()
