"""ClickHouseEngine: one async interface over a ClickHouse server and embedded chdb.

Both clients block, so every call runs in a thread pool the engine owns; the event
loop never waits on a socket or on chdb. The engines keep no asyncio objects, so
one engine can serve several event loops (a session-wide test fixture, a CLI run).

* `ServerEngine` speaks the native protocol through clickhouse-driver. A driver
  `Client` is not thread-safe, so the engine keeps one `Client` per worker thread of
  its pool (`pool_size`, default 4): a call takes a free client, runs, gives it back.
* `EmbeddedEngine` runs chdb in-process on a folder. chdb allows ONE folder per
  process and one process per folder, so build one engine per process (the DI
  container does) and hand it to the event store, read models and checkpoint store.

SQL passed to `execute` uses `%(name)s` parameters (see `bento.adapters.clickhouse._sql`)
and must run on both ClickHouse 18.16 and chdb's modern engine: no DateTime64 (keep
microseconds in a UInt64), no JSONExtract, no CTEs, no window functions, and the
`ENGINE = MergeTree ORDER BY ...` syntax. Qualify table names with `engine.table(name)`.

Rows come back as tuples of plain Python values: ints, floats, strings (UUIDs as
text), `date` for Date and naive UTC `datetime` for DateTime columns.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Self, TypeVar

from bento.adapters.clickhouse._errors import ClickHouseError
from bento.adapters.clickhouse._sql import check_identifier
from bento.adapters.clickhouse.settings import ClickHouseSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
Row = tuple[Any, ...]


class ClickHouseEngine(abc.ABC):
    """What the ClickHouse adapters need from a connection; see the module docstring."""

    mode: str

    def __init__(self, settings: ClickHouseSettings, *, pool_size: int) -> None:
        self.settings = settings
        self.database = check_identifier(settings.database)
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix=f"bento-ch-{self.mode}")
        self._closed = False
        self._started = False
        #: Commit markers of tables written under a lock local to this process, shared by
        #: every event store on this engine (see eventstore/clickhouse/_commit_state.py).
        self.commit_marks: dict[str, str] = {}
        #: Single-writer leases by table, shared (counted) by every event store of this
        #: process on that table (see eventstore/clickhouse/_writer_lease.py).
        self.writer_leases: dict[str, Any] = {}

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Connect (server) or open the folder (embedded) and create the database."""
        if self._started:
            return
        await self._run(self._open)
        await self.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        self._started = True

    async def close(self) -> None:
        """Wait for running calls, then release clients; idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, True)
        self._release()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- queries ----------------------------------------------------------------------
    def table(self, name: str) -> str:
        """`database.name`, checked; every adapter qualifies its tables with it."""
        return f"{self.database}.{check_identifier(name)}"

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run one statement; SELECTs return their rows, other statements []."""
        return await self._run(self._execute, sql, params)

    async def execute_columns(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Sequence[Any]]:
        """Run one SELECT and return its result column by column (one list per column,
        [] for no rows), with the same value types as `execute`. Bulk readers (the event
        store's stream and page reads) build their objects from whole columns: no
        per-row tuple is made, which is most of the client's cost for wide results."""
        return await self._run(self._execute_columns, sql, params)

    async def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, columnar: bool = False
    ) -> None:
        """One bulk INSERT into `table` (qualified by `self.table`). With `columnar=True`,
        `rows` holds one sequence per column, which is the fastest form for both engines.
        Pass `date`/`datetime` objects for Date/DateTime columns."""
        if not rows or (columnar and not rows[0]):
            return
        names = [check_identifier(c) for c in columns]
        await self._run(self._insert, self.table(table), names, rows, columnar)

    async def ping(self) -> bool:
        """True when a trivial query answers."""
        try:
            return await self.execute("SELECT 1") == [(1,)]
        except ClickHouseError:
            return False

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise ClickHouseError(f"the {self.mode} ClickHouse engine is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except RuntimeError as exc:
            if self._closed:  # the pool shut down while this call was queued
                raise ClickHouseError(f"the {self.mode} ClickHouse engine is closed") from exc
            raise

    # -- implemented per engine (all run in a pool thread) -----------------------------
    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _release(self) -> None: ...

    @abc.abstractmethod
    def _execute(self, sql: str, params: Mapping[str, Any] | None) -> list[Row]: ...

    @abc.abstractmethod
    def _execute_columns(self, sql: str, params: Mapping[str, Any] | None) -> list[Sequence[Any]]: ...

    @abc.abstractmethod
    def _insert(self, table: str, columns: list[str], rows: Sequence[Sequence[Any]], columnar: bool) -> None: ...


def build_engine(settings: ClickHouseSettings) -> ClickHouseEngine:
    """The engine `settings.mode` names, not yet started (imports its client only now)."""
    if settings.mode == "server":
        from bento.adapters.clickhouse._server import ServerEngine

        return ServerEngine(settings)
    from bento.adapters.clickhouse._embedded import EmbeddedEngine

    return EmbeddedEngine(settings)


@asynccontextmanager
async def open_engine(settings: ClickHouseSettings) -> AsyncIterator[ClickHouseEngine]:
    """A started engine for `settings`, closed on exit. Build ONE per process and share it."""
    engine = build_engine(settings)
    try:
        await engine.start()
        yield engine
    finally:
        await engine.close()


async def table_exists(settings: ClickHouseSettings, table: str) -> bool:
    """Whether `settings.database`.`table` exists, creating nothing: read-only commands
    (`bento events`, `bento projections status`) ask this before opening a store, because
    opening one creates its database, folder and tables. An embedded folder that does not
    exist, or holds no such table, is answered from its files without starting chdb."""
    database, name = check_identifier(settings.database), check_identifier(table)
    if settings.mode == "embedded":
        return await asyncio.to_thread(_embedded_table_file_exists, settings.path, database, name)
    engine = build_engine(settings)
    try:
        await engine._run(engine._open)
        rows = await engine.execute(
            "SELECT count() FROM system.tables WHERE database = %(database)s AND name = %(name)s",
            {"database": database, "name": name},
        )
    finally:
        await engine.close()
    return bool(rows and rows[0][0])


def _embedded_table_file_exists(path: str, database: str, table: str) -> bool:
    from pathlib import Path

    return (Path(path).expanduser() / "metadata" / database / f"{table}.sql").is_file()
