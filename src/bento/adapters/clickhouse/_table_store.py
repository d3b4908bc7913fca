"""Base of the small stores that keep one table on a shared ClickHouseEngine
(checkpoints, snapshots): migrations on start, nothing to release on close (the
engine's owner closes it), and strictly increasing save stamps for
ReplacingMergeTree versions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar, Self

from bento.adapters.clickhouse._migrations import Migration, apply_migrations
from bento.adapters.clickhouse._sql import check_identifier
from bento.adapters.clickhouse.engine import ClickHouseEngine


class ClickHouseTableStore:
    """Subclasses set `scope` (the migration scope prefix) and `migrations`."""

    scope: ClassVar[str]
    migrations: ClassVar[Sequence[Migration]]

    def __init__(self, engine: ClickHouseEngine, *, table: str) -> None:
        self.engine = engine
        self.table = check_identifier(table)
        self._last_saved_at = 0
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await apply_migrations(self.engine, f"{self.scope}:{self.table}", self.migrations, table=self.table)
            self._started = True

    async def close(self) -> None:
        """Nothing to release: the engine is shared and closed by its owner."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _stamp(self) -> int:
        """Save time in microseconds, strictly increasing within this store."""
        self._last_saved_at = max(time.time_ns() // 1000, self._last_saved_at + 1)
        return self._last_saved_at
