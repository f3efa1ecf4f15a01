"""Task pages on PostgreSQL: the server writes the page's JSON, read on asyncio connections.

The list is the API's busiest route. Here PostgreSQL builds the whole answer as one text
value (the same bytes as `task_page_json`, a test checks) from each task's stored JSON (the
`api_json` column, generated on write: revision 013), which the API sends on without decoding
a row, and the query runs on psycopg's asyncio connection: no SQLAlchemy around it and no
hand-off to a thread.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.adapt import Loader

if TYPE_CHECKING:
    from psycopg import AsyncConnection


@functools.lru_cache(maxsize=256)
def page_json_sql(rows_sql: str, limit: int, offset: int) -> str:
    """The page as one JSON text, around `rows_sql` (the tasks' `api_json`, sorted, LIMIT
    limit + 1: the extra row only says whether a next page exists)."""
    next_offset = f"'{offset + limit}'"
    return (
        "SELECT '{\"items\":[' || coalesce(string_agg(item, ',' ORDER BY n) "
        f'FILTER (WHERE n <= {limit}), \'\') || \'],"limit":{limit},"offset":{offset},'
        f'"next_offset":\' || CASE WHEN count(*) > {limit} THEN {next_offset} '
        "ELSE 'null' END || '}' "
        "FROM (SELECT row_number() OVER () AS n, page.api_json AS item "
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
        try:
            return await self._fetch_once(sql, params)
        except psycopg.OperationalError:
            # The server may have restarted: every idle connection is as dead as this one.
            await self._drop_idle()
            return await self._fetch_once(sql, params)

    async def write(self, sql: str, params: dict[str, Any]) -> None:
        """Run one writing statement (its own transaction: the connections are autocommit).

        Tried once more on a new connection after a connection error, as reads are: callers
        pass their rows' new ids, so when the first attempt did commit (the connection died
        before its answer) the second meets that row's key instead of writing twice, and the
        write is done.
        """
        try:
            await self._write_once(sql, params)
        except psycopg.OperationalError:
            await self._drop_idle()
            try:
                await self._write_once(sql, params)
            except psycopg.errors.UniqueViolation:
                return

    async def _write_once(self, sql: str, params: dict[str, Any]) -> None:
        async with self.slots:
            connection = self.idle.pop() if self.idle else await self._connect()
            try:
                await connection.execute(sql, params)
            except BaseException:
                await connection.close()
                raise
            if not connection.closed:
                self.idle.append(connection)

    async def _fetch_once(self, sql: str, params: dict[str, Any]) -> bytes:
        # Written out rather than as a context manager: this runs for every list request.
        async with self.slots:
            connection = self.idle.pop() if self.idle else await self._connect()
            try:
                cursor = await connection.execute(sql, params)
                row = await cursor.fetchone()
            except BaseException:
                # A failed or cancelled query leaves the connection in an unknown state.
                await connection.close()
                raise
            if not connection.closed:
                self.idle.append(connection)
        assert row is not None  # an aggregate without GROUP BY returns one row
        return bytes(row[0])

    async def _connect(self) -> AsyncConnection[Any]:
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
