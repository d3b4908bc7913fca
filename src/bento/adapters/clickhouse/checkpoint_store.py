"""ClickHouseCheckpointStore: projection and relay positions in a ClickHouse table.

`bento_checkpoints (name, position, saved_at_us)` is a ReplacingMergeTree keyed by
name and versioned by the save time in microseconds, read with FINAL, so the last
save wins — including a rebuild's save of 0, which a "highest position wins" rule
would refuse. Save times are strictly increasing within a process; two processes
saving one name in the same microsecond is not a case this store settles (one
runner per checkpoint name, as the runners document). Each save is one small
INSERT, issued once per batch of events, not per event.
"""

from __future__ import annotations

from bento.adapters.clickhouse._migrations import Migration
from bento.adapters.clickhouse._table_store import ClickHouseTableStore
from bento.adapters.clickhouse.engine import ClickHouseEngine

_MIGRATIONS = [
    Migration(
        1,
        "create checkpoints table",
        [
            "CREATE TABLE IF NOT EXISTS {db}.{table} (name String, position UInt64, saved_at_us UInt64) "
            "ENGINE = ReplacingMergeTree(saved_at_us) ORDER BY name"
        ],
    )
]


class ClickHouseCheckpointStore(ClickHouseTableStore):
    """CheckpointStore port on a shared ClickHouseEngine (not closed by `close`)."""

    scope = "checkpoints"
    migrations = _MIGRATIONS

    def __init__(self, engine: ClickHouseEngine, *, table: str = "bento_checkpoints") -> None:
        super().__init__(engine, table=table)

    async def load(self, name: str) -> int:
        rows = await self.engine.execute(
            f"SELECT position FROM {self.engine.table(self.table)} FINAL WHERE name = %(name)s", {"name": name}
        )
        return int(rows[0][0]) if rows else 0

    async def save(self, name: str, position: int) -> None:
        if position < 0:
            raise ValueError(f"checkpoint positions are >= 0, got {position}")
        await self.engine.insert(self.table, ["name", "position", "saved_at_us"], [(name, position, self._stamp())])

    async def all(self) -> dict[str, int]:
        rows = await self.engine.execute(f"SELECT name, position FROM {self.engine.table(self.table)} FINAL")
        return {str(name): int(position) for name, position in rows}
