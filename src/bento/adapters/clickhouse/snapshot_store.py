"""ClickHouseSnapshotStore: aggregate snapshots in a ClickHouse table.

One row per (stream, version) in a ReplacingMergeTree ordered by
`(stream, deleted, version)` and versioned by the save time, so re-saving a version
replaces it. `load` takes the highest version saved after the stream's latest
tombstone (a `delete` inserts one), which gives "highest version wins, even when
saved late" and lets `delete` forget everything before it, without mutations
(ClickHouse 18.16 only has asynchronous ALTER DELETE). Older snapshots stay in the
table; they cost little next to the events they summarise and can be pruned with
`ALTER TABLE ... DELETE WHERE` if needed.

`load` is one point read on the primary key, without `FINAL` (which merged every part
of the table at read time and cost milliseconds) or a subquery: the stream's best
snapshot (highest version; of rows of one version not merged yet, the latest save,
which is what the merge keeps) and its latest tombstone, `LIMIT 1 BY deleted`. Only
when that snapshot was saved before the tombstone does a second query look for one
saved after it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bento.adapters.clickhouse._migrations import Migration
from bento.adapters.clickhouse._table_store import ClickHouseTableStore
from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.application.ports.snapshot_store import Snapshot

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = ["stream", "version", "deleted", "aggregate_type", "schema_version", "state", "taken_at_us", "saved_at_us"]
_MIGRATIONS = [
    Migration(
        1,
        "create snapshots table",
        [
            "CREATE TABLE IF NOT EXISTS {db}.{table} (stream String, version UInt64, deleted UInt8, "
            "aggregate_type String, schema_version UInt32, state String, taken_at_us UInt64, saved_at_us UInt64) "
            "ENGINE = ReplacingMergeTree(saved_at_us) ORDER BY (stream, deleted, version)"
        ],
    )
]


def _micros(value: datetime) -> int:
    delta = value.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class ClickHouseSnapshotStore(ClickHouseTableStore):
    """SnapshotStore port on a shared ClickHouseEngine (not closed by `close`)."""

    scope = "snapshots"
    migrations = _MIGRATIONS

    def __init__(self, engine: ClickHouseEngine, *, table: str = "bento_snapshots") -> None:
        super().__init__(engine, table=table)

    async def load(self, stream: str) -> Snapshot | None:
        table = self.engine.table(self.table)
        # One primary-key read: the best snapshot and the latest tombstone of the stream.
        rows = await self.engine.execute(
            f"SELECT deleted, version, saved_at_us, aggregate_type, schema_version, state, taken_at_us FROM {table} "
            "WHERE stream = %(stream)s ORDER BY deleted, version DESC, saved_at_us DESC LIMIT 1 BY deleted",
            {"stream": stream},
        )
        best = next((r[1:] for r in rows if int(r[0]) == 0), None)
        tombstone = max((int(r[2]) for r in rows if int(r[0]) == 1), default=0)
        if best is not None and int(best[1]) <= tombstone:
            best = await self._latest_after(table, stream)  # deleted after its best save: rare
        if best is None:
            return None
        version, _, aggregate_type, schema_version, state, taken_at_us = best
        return Snapshot(
            stream=stream,
            version=int(version),
            state=json.loads(state),
            aggregate_type=str(aggregate_type),
            schema_version=int(schema_version),
            taken_at=_EPOCH + timedelta(microseconds=int(taken_at_us)),
        )

    async def _latest_after(self, table: str, stream: str) -> tuple[Any, ...] | None:
        """The highest version saved after the stream's latest tombstone."""
        rows = await self.engine.execute(
            f"SELECT version, saved_at_us, aggregate_type, schema_version, state, taken_at_us FROM {table} "
            "WHERE stream = %(stream)s AND deleted = 0 AND saved_at_us > "
            f"(SELECT max(saved_at_us) FROM {table} WHERE stream = %(stream)s AND deleted = 1) "
            "ORDER BY version DESC, saved_at_us DESC LIMIT 1",
            {"stream": stream},
        )
        return rows[0] if rows else None

    async def save(self, snapshot: Snapshot) -> None:
        taken = snapshot.taken_at or datetime.now(UTC)
        row = (
            snapshot.stream,
            snapshot.version,
            0,
            snapshot.aggregate_type,
            snapshot.schema_version,
            json.dumps(snapshot.state, separators=(",", ":"), ensure_ascii=False),
            _micros(taken),
            self._stamp(),
        )
        await self.engine.insert(self.table, _COLUMNS, [row])

    async def delete(self, stream: str) -> None:
        await self.engine.insert(self.table, _COLUMNS, [(stream, 0, 1, "", 0, "", 0, self._stamp())])
