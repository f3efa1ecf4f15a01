"""Task pages on PostgreSQL: stored JSON read on asyncpg's asyncio connections.

The list is the API's busiest route. PostgreSQL keeps each task's API JSON beside it (the
`api_json` column, generated on write: revision 013); a page is those texts joined inside the
page's envelope, the same bytes as `task_page_json` (a test checks), with no row decoded.
The queries run on asyncpg, whose protocol is compiled and which prepares each statement once
per connection: a page costs the server about half the CPU it cost on psycopg's asyncio
connection, with no SQLAlchemy around it and no hand-off to a thread.
"""

from __future__ import annotations

import asyncio
import functools
import re
from typing import TYPE_CHECKING, Any

import asyncpg

from weavenn_cli.runtime.db.engine import CONNECT_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import URL


class DatabaseUnreachable(Exception):
    """The page's database cannot be reached (refused, cut, shutting down): answer 503."""


# What a lost or refused connection raises in asyncpg; SQL errors are not among them.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)
_NAMED_PARAMETER = re.compile(r"%\((\w+)\)s")
# libpq's client-side parameters, which asyncpg would send to the server as settings (and the
# server refuse): a DATABASE_URL written for psycopg keeps working without them.
LIBPQ_CLIENT_PARAMETERS = frozenset(
    {
        "connect_timeout",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "fallback_application_name",
        "gssencmode",
        "gssdelegation",
        "channel_binding",
        "requirepeer",
        "require_auth",
        "sslcompression",
        "sslpassword",
        "sslsni",
        "hostaddr",
        "replication",
    }
)


def asyncpg_dsn(url: URL) -> tuple[str, float]:
    """The URL for asyncpg (without libpq's client-side parameters) and the connect timeout
    (`connect_timeout` when the URL sets one)."""
    timeout = url.query.get("connect_timeout")
    dsn = url.set(drivername="postgresql").difference_update_query(LIBPQ_CLIENT_PARAMETERS)
    seconds = float(timeout if isinstance(timeout, str) else CONNECT_TIMEOUT_SECONDS)
    return dsn.render_as_string(hide_password=False), seconds


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """`%(name)s` parameters (how the SQL is written and compiled here) as asyncpg's `$n`,
    with the names in their order; a name used twice keeps its number."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return _NAMED_PARAMETER.sub(number, sql).replace("%%", "%"), tuple(names)


def bound(sql: str, params: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """A statement written with `%(name)s` as asyncpg runs it: numbered, and its arguments."""
    statement, names = numbered(sql)
    return statement, tuple(params[name] for name in names)


def page_bytes(items: Sequence[str], limit: int, offset: int) -> bytes:
    """The page's JSON around its tasks' JSON (`items` holds up to limit + 1 of them: the
    extra one only says whether a next page exists)."""
    next_offset = offset + limit if len(items) > limit else "null"
    return (
        f'{{"items":[{",".join(items[:limit])}],"limit":{limit},"offset":{offset},'
        f'"next_offset":{next_offset}}}'
    ).encode()


class PageReader:
    """Runs page queries on a few asyncio connections kept open between requests.

    Hand-written rather than a pool's: asyncpg's pool would do, but this one says exactly what
    happens while the database is down (a request fails at once, answered 503) and after a
    restart: reads are idempotent, so a query that meets a connection cut since its last use
    is tried once more on a new one.
    """

    def __init__(
        self, dsn: str, max_connections: int, connect_timeout: float = CONNECT_TIMEOUT_SECONDS
    ) -> None:
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self.idle: list[asyncpg.Connection] = []
        self.slots = asyncio.Semaphore(max_connections)

    async def fetch_texts(self, statement: str, arguments: Sequence[Any]) -> list[str]:
        """The first column of each row (text); the statement numbered as `numbered` writes
        it, with its arguments in that order (`bound` makes both)."""
        try:
            rows = await self._run(statement, arguments, fetch=True)
        except CONNECTION_ERRORS:
            # The server may have restarted: every idle connection is as dead as this one.
            await self._drop_idle()
            rows = await self._run_or_unreachable(statement, arguments, fetch=True)
        return [row[0] for row in rows]

    async def write(self, sql: str, params: dict[str, Any]) -> None:
        """Run one writing statement (its own transaction: asyncpg commits each statement
        outside a transaction block).

        Tried once more on a new connection after a connection error, as reads are: callers
        pass their rows' new ids, so when the first attempt did commit (the connection died
        before its answer) the second meets that row's key instead of writing twice, and the
        write is done.
        """
        statement, arguments = bound(sql, params)
        try:
            await self._run(statement, arguments, fetch=False)
        except CONNECTION_ERRORS:
            await self._drop_idle()
            try:
                await self._run_or_unreachable(statement, arguments, fetch=False)
            except asyncpg.UniqueViolationError:
                return

    async def _run_or_unreachable(
        self, statement: str, arguments: Sequence[Any], *, fetch: bool
    ) -> Any:
        try:
            return await self._run(statement, arguments, fetch=fetch)
        except CONNECTION_ERRORS as error:
            raise DatabaseUnreachable(f"{type(error).__name__}: {error}") from error

    async def _run(self, statement: str, arguments: Sequence[Any], *, fetch: bool) -> Any:
        # Written out rather than as a context manager: this runs for every list request.
        async with self.slots:
            connection = self.idle.pop() if self.idle else await self._connect()
            try:
                if fetch:
                    result: Any = await connection.fetch(statement, *arguments)
                else:
                    result = await connection.execute(statement, *arguments)
            except BaseException:
                # A failed or cancelled query leaves the connection in an unknown state.
                connection.terminate()
                raise
            if not connection.is_closed():
                self.idle.append(connection)
        return result

    async def _connect(self) -> asyncpg.Connection:
        # Whatever stops a connection (refused, timed out, no such database, role or password,
        # too many clients) is the database being unavailable to this service: 503, as with
        # psycopg, whose OperationalError covers them all.
        try:
            return await asyncpg.connect(self.dsn, timeout=self.connect_timeout)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as error:
            raise DatabaseUnreachable(f"{type(error).__name__}: {error}") from error

    async def _drop_idle(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            connection.terminate()

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            await connection.close(timeout=5)
