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

import time
from typing import Self

from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.clickhouse.migrations import Migration, apply_migrations
from bento.adapters.clickhouse.sql import check_identifier

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


class ClickHouseCheckpointStore:
    """CheckpointStore port on a shared ClickHouseEngine (not closed by `close`)."""

    def __init__(self, engine: ClickHouseEngine, *, table: str = "bento_checkpoints") -> None:
        self.engine = engine
        self.table = check_identifier(table)
        self._last_saved_at = 0
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await apply_migrations(self.engine, f"checkpoints:{self.table}", _MIGRATIONS, table=self.table)
            self._started = True

    async def close(self) -> None:
        """Nothing to release: the engine is shared and closed by its owner."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _stamp(self) -> int:
        self._last_saved_at = max(time.time_ns() // 1000, self._last_saved_at + 1)
        return self._last_saved_at

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
