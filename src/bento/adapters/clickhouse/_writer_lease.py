"""The single-writer lease: how a ClickHouse *server* store without a cross-process
lock makes sure it is the only writer of its table.

An in-process lock and the version cache are exact only while no other process
writes the table. In single-writer mode the store therefore takes a lease before its
first commit, and a second writer process fails there, before it commits anything
(readers never take it). ClickHouse
has no compare-and-set, but on one server `CREATE TABLE` of a name that exists fails
(the DDL guard serialises it), so creating a table is the atomic step:

* The lease is the table `<table>__writer_<generation>` (a `Memory` table of
  heartbeats: token, server `now()`). The highest generation present is the current
  lease; its holder inserts a heartbeat every `lease / 3` seconds.
* A writer that finds the current generation with a heartbeat younger than `lease`
  (by the server's clock), or still without one (its creator is about to write it;
  it waits up to `lease` to see one), refuses to write: `WriterLeaseError`.
* A lease with no heartbeat for `lease` seconds (its holder died) is taken over by
  creating the next generation; of two writers racing for it only one CREATE
  succeeds, and the loser sees a fresh lease and refuses. Older generations are
  dropped; `close()` drops the holder's own table, so the next writer starts at once.
* The holder checks before every INSERT that its last confirmed heartbeat (one that
  also found its own generation still the highest) is younger than `lease` minus a
  margin; a taker needs `lease` without a heartbeat. So the old holder stops before a
  taker starts, as long as a frozen process does not outlast its lease during one
  INSERT: the same residual risk as the Redis lease (docs/eventstore.md).

The lease belongs to the process, not to one store object: stores of one engine on
one table share it (`join_lease` / `leave_lease`, counted in `engine.writer_leases`),
as they share the in-process lock and commit marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from dataclasses import dataclass, field

from bento.adapters.clickhouse._errors import ClickHouseError
from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.application.errors import WriterLeaseError

logger = logging.getLogger(__name__)

#: ClickHouse's TABLE_ALREADY_EXISTS.
_TABLE_EXISTS = 57
#: Heartbeats are stamped in whole seconds by the server, so the holder stops this
#: much earlier than a taker may start.
_MARGIN = 1.5


class WriterLease:
    """One store's claim to be the only writer of `table` (see module docstring)."""

    def __init__(self, engine: ClickHouseEngine, table: str, *, lease: float = 10.0) -> None:
        if lease < 2 * _MARGIN + 1:
            raise ValueError(f"the single-writer lease must be at least {2 * _MARGIN + 1:.0f} s")
        self.engine = engine
        self.table = table
        self.lease = lease
        self.token = uuid.uuid4().hex
        self.generation = 0
        self._prefix = f"{table}__writer_"
        self._confirmed = float("-inf")  # monotonic start of the last confirmed heartbeat
        self._lost = False
        self._task: asyncio.Task[None] | None = None

    @property
    def where(self) -> str:
        return f"{self.engine.database}.{self.table}"

    def _name(self, generation: int) -> str:
        return self.engine.table(f"{self._prefix}{generation}")

    async def _generations(self) -> list[int]:
        rows = await self.engine.execute(
            "SELECT name FROM system.tables WHERE database = %(db)s AND startsWith(name, %(prefix)s)",
            {"db": self.engine.database, "prefix": self._prefix},
        )
        pattern = re.compile(re.escape(self._prefix) + r"(\d+)$")
        return sorted(int(m.group(1)) for (name,) in rows if (m := pattern.match(str(name))))

    async def _age(self, generation: int) -> float | None:
        """Seconds since the lease's last heartbeat (server clock); None without one."""
        rows = await self.engine.execute(
            f"SELECT count(), toUInt64(now()) - toUInt64(max(beat)) FROM {self._name(generation)}"
        )
        return float(rows[0][1]) if rows and int(rows[0][0]) else None

    async def acquire(self) -> None:
        """Take the lease, or raise WriterLeaseError if another writer holds it."""
        waited_since: float | None = None
        while True:
            began = time.monotonic()
            generations = await self._generations()
            current = generations[-1] if generations else 0
            if current:
                try:
                    age = await self._age(current)
                except ClickHouseError:  # dropped meanwhile (its holder closed): look again
                    await asyncio.sleep(0.05)
                    continue
                if age is None:  # just created; its heartbeat follows at once
                    waited_since = waited_since if waited_since is not None else began
                    if began - waited_since < self.lease:
                        await asyncio.sleep(0.2)
                        continue
                elif age < self.lease:
                    raise WriterLeaseError(
                        f"another process is the single writer of {self.where} (heartbeat {age:.0f}s ago); "
                        "stop it, or set STREAM_LOCK__BACKEND=redis to let several processes write"
                    )
            try:
                await self.engine.execute(
                    f"CREATE TABLE {self._name(current + 1)} (token String, beat DateTime) ENGINE = Memory"
                )
            except ClickHouseError as exc:
                if exc.code == _TABLE_EXISTS:
                    continue  # another writer took it first: it is fresh now
                raise
            self.generation = current + 1
            self._confirmed = began  # the CREATE itself claims it; the first heartbeat confirms
            await self._beat(began)
            for old in generations:
                with contextlib.suppress(ClickHouseError):
                    await self.engine.execute(f"DROP TABLE IF EXISTS {self._name(old)}")
            if self._lost:
                raise WriterLeaseError(f"another process took the single-writer lease on {self.where} at once")
            self._task = asyncio.create_task(self._keep(), name="bento-clickhouse-writer-lease")
            return

    async def _beat(self, began: float) -> None:
        if began - self._confirmed > self.lease - _MARGIN:
            # Unconfirmed for a whole lease: another process may have taken over and even
            # dropped our table and re-created its name; never write into it again.
            self._lost = True
            logger.error(
                "the single-writer lease on %s ran out (no heartbeat got through); appends now fail", self.where
            )
            return
        await self.engine.execute(
            f"INSERT INTO {self._name(self.generation)} SELECT %(token)s, now()", {"token": self.token}
        )
        generations = await self._generations()
        if not generations or generations[-1] != self.generation:
            self._lost = True
            logger.error("lost the single-writer lease on %s to another process; appends now fail", self.where)
            return
        self._confirmed = began

    async def _keep(self) -> None:
        while not self._lost:
            await asyncio.sleep(self.lease / 3)
            try:
                await self._beat(time.monotonic())
            except Exception as exc:  # keep trying; check() refuses appends once the lease ran out
                logger.warning("could not renew the single-writer lease on %s: %s", self.where, exc)

    def check(self) -> None:
        """Raise WriterLeaseError unless this store may still write (call before each INSERT)."""
        if self._lost or time.monotonic() - self._confirmed > self.lease - _MARGIN:
            raise WriterLeaseError(
                f"this process no longer holds the single-writer lease on {self.where} "
                "(another writer took over, or heartbeats failed); restart it"
            )

    async def release(self) -> None:
        """Stop the heartbeats and drop the lease, so the next writer starts at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.generation and not self._lost:
            try:
                await self.engine.execute(f"DROP TABLE IF EXISTS {self._name(self.generation)}")
            except ClickHouseError as exc:
                logger.warning("could not drop the single-writer lease on %s: %s", self.where, exc)
        self._lost = True


@dataclass(slots=True)
class _Shared:
    lease: WriterLease
    users: int = 0
    acquired: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


async def join_lease(engine: ClickHouseEngine, table: str, *, lease: float) -> WriterLease:
    """The process's lease on `table`, taken by the first store that joins."""
    shared: _Shared | None = engine.writer_leases.get(table)
    if shared is None:
        shared = _Shared(WriterLease(engine, table, lease=lease))
        engine.writer_leases[table] = shared
        try:
            await shared.lease.acquire()
        except BaseException as exc:
            engine.writer_leases.pop(table, None)
            shared.acquired.set_exception(exc)
            shared.acquired.exception()  # retrieved: later joiners re-raise their own copy
            raise
        shared.acquired.set_result(None)
    else:
        await asyncio.shield(shared.acquired)
    shared.users += 1
    return shared.lease


async def leave_lease(engine: ClickHouseEngine, table: str) -> None:
    """Drop this store's share; the last one releases the lease."""
    shared: _Shared | None = engine.writer_leases.get(table)
    if shared is None:
        return
    shared.users -= 1
    if shared.users <= 0:
        engine.writer_leases.pop(table, None)
        await shared.lease.release()
