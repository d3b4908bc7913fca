"""ClickHouseInbox: processed message ids in a ClickHouse table (server or chdb, same SQL).

ClickHouse has no transactions and no unique keys, so "first mark wins" cannot be one atomic
statement. The inbox uses a claim scheme instead: `mark_processed` INSERTs a claim row
`(consumer, message_id, token, claimed_at_us)` with a random token, then reads the earliest
claim of that id (`ORDER BY claimed_at_us, token LIMIT 1`); the caller won when that claim is
its own. The table is a plain MergeTree, so no merge ever drops or reorders a claim: once a
claim is visible, every later reader agrees on the winner.

What this guarantees:

- A redelivery that arrives after the first handling was marked (the usual case: the first
  consumer acked late, died after handling, or the broker redelivered after a timeout) is
  absorbed — on any process, after any restart (the table is durable).
- Within one process, concurrent marks of one id have exactly one winner (marks of the same
  id are serialised by a per-id lock).

What it cannot guarantee: two *processes* marking the same id within the few milliseconds
an INSERT takes to become visible can both win, when the claim stamped earlier becomes
visible later than the other process's read. Use the Redis inbox (`SET NX`) where concurrent
duplicate deliveries to different processes must be settled exactly. Rows are never deleted;
drop old ones with `ALTER TABLE … DELETE WHERE claimed_at_us < …` if the table grows too big.
"""

from __future__ import annotations

import asyncio
import uuid

from bento.adapters.clickhouse._migrations import Migration
from bento.adapters.clickhouse._table_store import ClickHouseTableStore
from bento.adapters.clickhouse.engine import ClickHouseEngine

_MIGRATIONS = [
    Migration(
        1,
        "create inbox table",
        [
            "CREATE TABLE IF NOT EXISTS {db}.{table} "
            "(consumer String, message_id String, token String, claimed_at_us UInt64) "
            "ENGINE = MergeTree ORDER BY (consumer, message_id)"
        ],
    )
]

_COLUMNS = ["consumer", "message_id", "token", "claimed_at_us"]


class ClickHouseInbox(ClickHouseTableStore):
    """Inbox port on a shared ClickHouseEngine (not closed by `close`); see the module docstring."""

    scope = "inbox"
    migrations = _MIGRATIONS

    def __init__(self, engine: ClickHouseEngine, *, table: str = "bento_inbox") -> None:
        super().__init__(engine, table=table)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiters: dict[tuple[str, str], int] = {}

    async def is_processed(self, consumer: str, message_id: str) -> bool:
        rows = await self.engine.execute(
            f"SELECT count() FROM {self.engine.table(self.table)} "
            "WHERE consumer = %(consumer)s AND message_id = %(message_id)s",
            {"consumer": consumer, "message_id": message_id},
        )
        return bool(rows and int(rows[0][0]) > 0)

    async def mark_processed(self, consumer: str, message_id: str) -> bool:
        key = (consumer, message_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            async with lock:
                return await self._claim(consumer, message_id)
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:  # the last one out forgets the lock: memory stays bounded
                del self._waiters[key], self._locks[key]

    async def _claim(self, consumer: str, message_id: str) -> bool:
        # Already claimed (a redelivery after the first mark): answer without writing a row.
        if await self.is_processed(consumer, message_id):
            return False
        token = uuid.uuid4().hex
        await self.engine.insert(self.table, _COLUMNS, [(consumer, message_id, token, self._stamp())])
        rows = await self.engine.execute(
            f"SELECT token FROM {self.engine.table(self.table)} "
            "WHERE consumer = %(consumer)s AND message_id = %(message_id)s "
            "ORDER BY claimed_at_us, token LIMIT 1",
            {"consumer": consumer, "message_id": message_id},
        )
        return bool(rows) and str(rows[0][0]) == token
