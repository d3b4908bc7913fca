"""ClickHouseReadModel: a ReadModelPort table declared from a pydantic model.

The table is a `ReplacingMergeTree(_bento_version) ORDER BY id`. Every write is an
INSERT of a whole row with its version; a delete inserts a tombstone row
(`_bento_deleted = 1`). Reads use `FINAL`, which keeps, per id, the row with the
highest version (the last inserted one among equal versions) and only then applies
WHERE, so an older write arriving late, or a replay, never shows through and a
tombstone hides the record until a newer upsert. Checked on ClickHouse 18.16 and on
chdb. Background merges eventually drop the superseded rows.

A zero-downtime rebuild (RebuildableReadModel) fills a shadow table `<table>__rebuild`
beside the serving one, then swaps the names in one statement: `EXCHANGE TABLES` where the
database supports it (chdb, any Atomic database), else (ClickHouse 18.16) one
`RENAME TABLE t TO t__retired, t__rebuild TO t`, which renames both under the server's
global lock. Readers name the table only, so every process reads the new version from the
next query on; a query already running finishes on the old one.

Projections should write through `write_batch` (the projection runner's buffer does):
one INSERT per batch instead of one per event keeps ClickHouse's part count low.
Calls go through the shared `ClickHouseEngine`, which runs the blocking client in its
thread pool; the engine belongs to its owner, so `close()` does not close it.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Generic, Self, TypeVar

from pydantic import BaseModel

from bento.adapters.clickhouse._errors import ClickHouseError
from bento.adapters.clickhouse._read_model_schema import (
    DELETED_COLUMN,
    VERSION_COLUMN,
    Column,
    check_filters,
    columns_of,
    decode_row,
    encode_record,
    filter_value,
)
from bento.adapters.clickhouse._sql import check_identifier
from bento.adapters.clickhouse.engine import ClickHouseEngine

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

#: Suffixes of the table a rebuild fills and of the one it replaces (see the module docstring).
SHADOW_SUFFIX = "__rebuild"
RETIRED_SUFFIX = "__retired"

#: Engines found to lack EXCHANGE TABLES (ClickHouse 18.16): they switch with one RENAME.
_EXCHANGE: weakref.WeakKeyDictionary[ClickHouseEngine, bool] = weakref.WeakKeyDictionary()

#: LIMIT needs a count; this one means "all the rest".
_NO_LIMIT = 2**63 - 1


class ClickHouseReadModel(Generic[M]):
    """ReadModelPort over one ClickHouse table (created, or extended by new columns, on `start`)."""

    def __init__(self, engine: ClickHouseEngine, model: type[M], *, table: str | None = None) -> None:
        self.engine = engine
        self.model = model
        self.table = check_identifier(table or _snake(model.__name__))
        self.columns: list[Column] = columns_of(model)
        self._by_name = {c.name: c for c in self.columns}
        self._names = [c.name for c in self.columns]
        self._insert_columns = [*self._names, VERSION_COLUMN, DELETED_COLUMN]
        self._select = ", ".join(self._names)
        self._started = False
        self._shadow: ClickHouseReadModel[M] | None = None

    @property
    def qualified(self) -> str:
        return self.engine.table(self.table)

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Create the table, or add columns for fields the model gained since."""
        if self._started:
            return
        body = ", ".join([*(c.ddl for c in self.columns), f"{VERSION_COLUMN} UInt64", f"{DELETED_COLUMN} UInt8"])
        await self.engine.execute(
            f"CREATE TABLE IF NOT EXISTS {self.qualified} ({body}) "
            f"ENGINE = ReplacingMergeTree({VERSION_COLUMN}) ORDER BY id"
        )
        existing = {
            row[0]
            for row in await self.engine.execute(
                "SELECT name FROM system.columns WHERE database = %(db)s AND table = %(table)s",
                {"db": self.engine.database, "table": self.table},
            )
        }
        for column in self.columns:
            if column.name not in existing:
                # 18.16 has no ADD COLUMN IF NOT EXISTS, hence the look-up first. Existing
                # rows read the new column's default; rebuild the projection to fill it.
                logger.info("adding column %s to read model table %s", column.name, self.qualified)
                await self.engine.execute(f"ALTER TABLE {self.qualified} ADD COLUMN {column.ddl}")
        self._started = True

    async def close(self) -> None:
        """Nothing to release: the engine is shared and closed by its owner."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- writes -----------------------------------------------------------------------
    async def upsert(self, record: M, *, version: int) -> None:
        await self.write_batch([(record, version)], ())

    async def delete(self, id: str, *, version: int) -> None:
        await self.write_batch((), [(id, version)])

    async def write_batch(self, upserts: Sequence[tuple[M, int]], deletes: Sequence[tuple[str, int]]) -> None:
        """Many upserts and tombstones in ONE insert (what projections should use)."""
        rows: list[tuple[Any, ...]] = [(*encode_record(r, self.columns), _version(v), 0) for r, v in upserts]
        if deletes:
            blank = tuple(c.default() for c in self.columns[1:])
            rows.extend((str(id), *blank, _version(v), 1) for id, v in deletes)
        await self.engine.insert(self.table, self._insert_columns, rows)

    async def clear(self) -> None:
        await self.engine.execute(f"TRUNCATE TABLE {self.qualified}")

    # -- RebuildableReadModel ---------------------------------------------------------
    async def shadow(self) -> ClickHouseReadModel[M]:
        """The `<table>__rebuild` table, created (with the model's current columns) when missing."""
        if self._shadow is None:
            self._shadow = ClickHouseReadModel(self.engine, self.model, table=self.table + SHADOW_SUFFIX)
            # A leftover of a switch that died before its DROP would make the RENAME fail.
            await self._drop(self.engine.table(self.table + RETIRED_SUFFIX))
        await self._shadow.start()
        return self._shadow

    async def has_shadow(self) -> bool:
        rows = await self.engine.execute(
            "SELECT count() FROM system.tables WHERE database = %(db)s AND name = %(table)s",
            {"db": self.engine.database, "table": self.table + SHADOW_SUFFIX},
        )
        return bool(rows and rows[0][0])

    async def promote_shadow(self) -> None:
        """Swap the shadow in under this table's name in one statement, then drop the old rows."""
        serving, shadow = self.qualified, self.engine.table(self.table + SHADOW_SUFFIX)
        retired = self.engine.table(self.table + RETIRED_SUFFIX)
        try:
            if _EXCHANGE.get(self.engine, True):
                try:
                    await self.engine.execute(f"EXCHANGE TABLES {serving} AND {shadow}")
                    old = shadow
                except ClickHouseError as exc:
                    if not await self.has_shadow():
                        raise
                    # ClickHouse 18.16 (and non-Atomic databases) have no EXCHANGE: one RENAME of
                    # both names, done under the server's global lock, is the atomic switch there.
                    logger.debug("EXCHANGE TABLES refused (%s); switching %s with RENAME", exc, serving)
                    _EXCHANGE[self.engine] = False
            if not _EXCHANGE.get(self.engine, True):
                await self.engine.execute(f"RENAME TABLE {serving} TO {retired}, {shadow} TO {serving}")
                old = retired
        except ClickHouseError as exc:
            if not await self.has_shadow():
                raise LookupError(f"read model table {self.qualified} has no shadow to promote") from exc
            raise
        self._shadow = None
        await self._drop(old)

    async def drop_shadow(self) -> None:
        await self._drop(self.engine.table(self.table + SHADOW_SUFFIX))
        self._shadow = None

    async def _drop(self, qualified: str) -> None:
        # SYNC (modern engines) frees the files now instead of minutes later; 18.16 drops at once anyway.
        sync = " SYNC" if self.engine.mode == "embedded" else ""
        await self.engine.execute(f"DROP TABLE IF EXISTS {qualified}{sync}")

    # -- reads ------------------------------------------------------------------------
    async def get(self, id: str) -> M | None:
        rows = await self.engine.execute(
            f"SELECT {self._select} FROM {self.qualified} FINAL WHERE id = %(id)s AND {DELETED_COLUMN} = 0",
            {"id": str(id)},
        )
        return decode_row(self.model, self.columns, rows[0]) if rows else None

    async def find(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[M]:
        condition, params = self._where(where)
        order = ""
        if order_by is not None:
            if order_by not in self._by_name:
                raise ValueError(f"{self.model.__name__} has no field {order_by!r} to order by")
            direction = " DESC" if descending else ""
            order = f" ORDER BY {order_by}{direction}, id{direction}"
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError("limit and offset must be >= 0")
        paging = f" LIMIT {int(offset)}, {_NO_LIMIT if limit is None else int(limit)}" if limit or offset else ""
        if limit == 0:
            return []
        rows = await self.engine.execute(
            f"SELECT {self._select} FROM {self.qualified} FINAL WHERE {condition}{order}{paging}", params
        )
        return [decode_row(self.model, self.columns, row) for row in rows]

    async def count(self, where: Mapping[str, Any] | None = None) -> int:
        condition, params = self._where(where)
        rows = await self.engine.execute(f"SELECT count() FROM {self.qualified} FINAL WHERE {condition}", params)
        return int(rows[0][0])

    def _where(self, where: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
        parts = [f"{DELETED_COLUMN} = 0"]
        params: dict[str, Any] = {}
        if where:
            check_filters(self.model, self._by_name, where)
            for n, (name, value) in enumerate(where.items()):
                if value is None:
                    parts.append(f"isNull({name})")
                else:
                    params[f"p{n}"] = filter_value(self._by_name[name], value)
                    parts.append(f"{name} = %(p{n})s")
        return " AND ".join(parts), params


class ClickHouseReadModels:
    """ReadModels on one engine: one ClickHouseReadModel per table (default: the class name in
    snake_case), its table created on first use."""

    def __init__(self, engine: ClickHouseEngine) -> None:
        self._engine = engine
        self._models: dict[str, Any] = {}

    async def get(self, model: type[M], *, table: str | None = None) -> ClickHouseReadModel[M]:
        key = table or _snake(model.__name__)
        if key not in self._models:
            read_model = ClickHouseReadModel(self._engine, model, table=key)
            await read_model.start()
            self._models[key] = read_model
        found: ClickHouseReadModel[M] = self._models[key]
        return found


def _version(version: int) -> int:
    if version < 0:
        raise ValueError(f"read-model versions are >= 0, got {version}")
    return version


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))
