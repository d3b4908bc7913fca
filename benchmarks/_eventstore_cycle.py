"""Command-cycle, load and baseline figures of the ClickHouse event store, called by
`benchmarks/eventstore.py` (not runnable alone).

(e) `bench_eventsourcing`: the `eventsourcing` library (extra `bench`) on a SQLite file,
    the store a user would pick instead: one save per command (`app.save` of one new
    event; the issue's baseline) and the full cycle (`repository.get`, one event, save).
(f) `bench_command_cycle`: load an aggregate through `EventSourcedRepository`, record one
    event, save; one at a time (1,000 commands over 100 aggregates) and 100 in flight
    (100 tasks, one aggregate each, 20 commands each). The repository starts cold: each
    aggregate's first load reads the store.
(g) `bench_floor`: the raw client's point read of one aggregate's rows plus a raw
    single-row INSERT, one after the other: the cycle a hand-written loop would pay.
(h) `bench_load_10k`: a 10,000-event aggregate loaded through the repository (no cache)
    against the raw SELECT of its rows; and with a snapshot at its last version against
    the raw point read of that snapshot row.

"Raw" is the client a user would call directly: clickhouse-driver's `Client.execute`
for the server, the chdb session for embedded (JSONCompact out, `Python()` in: the
fastest forms measured). Nothing here is a test.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from bento.adapters.clickhouse._event_store_schema import INSERT_COLUMNS
from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.adapters.clickhouse.snapshot_store import ClickHouseSnapshotStore
from bento.adapters.memory.stream_lock import InProcessStreamLock
from bento.application.repository import EventSourcedRepository
from bento.domain.aggregate import AggregateRoot
from bento.testing.events import ContractEvent, make_event


class CycleAccount(AggregateRoot):
    """Sums ContractEvents; snapshots its total."""

    aggregate_type: ClassVar[str] = "CycleAccount"
    total: int = 0

    def apply_ContractEvent(self, event: ContractEvent) -> None:
        self.total += event.seq

    def snapshot_state(self) -> dict[str, Any]:
        return {"total": self.total}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.total = int(state["total"])


# -- (e) the eventsourcing library ----------------------------------------------------------
@functools.cache
def _eventsourcing_classes() -> tuple[Any, Any]:
    """The peer's aggregate and application, defined once (it registers classes by topic)."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Account(Aggregate):  # type: ignore[misc]
        def __init__(self) -> None:
            self.total = 0

        @event("Deposited")  # type: ignore[misc]
        def deposit(self, amount: int) -> None:
            self.total += amount

    class Bank(Application):  # type: ignore[misc]
        pass

    return Account, Bank


def bench_eventsourcing(commands: int = 2000, aggregates: int = 100) -> dict[str, Any]:
    Account, Bank = _eventsourcing_classes()
    with tempfile.TemporaryDirectory() as folder:
        app = Bank(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": os.path.join(folder, "es.db")})
        ids = []
        for _ in range(aggregates):
            account = Account()
            app.save(account)
            ids.append(account.id)
        account = app.repository.get(ids[0])
        started = time.perf_counter()
        for n in range(commands):
            account.deposit(n)
            app.save(account)
        saves = commands / (time.perf_counter() - started)
        started = time.perf_counter()
        for n in range(commands):
            account = app.repository.get(ids[n % aggregates])
            account.deposit(n)
            app.save(account)
        cycles = commands / (time.perf_counter() - started)
        app.close()
    return {"eventsourcing_save_per_s": round(saves), "eventsourcing_cycle_per_s": round(cycles)}


# -- raw clients ------------------------------------------------------------------------------
class RawClient:
    """The engine's database through the raw client, outside bento (module docstring)."""

    def __init__(self, engine: ClickHouseEngine) -> None:
        self.engine = engine
        self.select: Callable[[str], list[Any]]
        self.insert: Callable[[str, list[list[Any]]], None]
        names = ", ".join(INSERT_COLUMNS)
        if engine.mode == "server":
            from clickhouse_driver import Client

            client = Client(host=engine.settings.host, port=engine.settings.port)
            self.select = client.execute
            self.insert = lambda table, columns: client.execute(
                f"INSERT INTO {table} ({names}) VALUES", columns, columnar=True
            )
        else:
            session = engine._session  # chdb allows one session per process: the engine's

            def select(sql: str) -> list[Any]:
                return list(json.loads(session.query(sql, "JSONCompact").bytes() or b'{"data":[]}')["data"])

            def insert(table: str, columns: list[list[Any]]) -> None:
                frame = dict(zip(INSERT_COLUMNS, columns, strict=True))
                if len(columns[0]) < 1000:  # JSON text has the lower fixed cost
                    body = json.dumps(frame, ensure_ascii=False)
                    session.query(f"INSERT INTO {table} ({names}) FORMAT JSONColumns\n{body}", "CSV")
                else:
                    session.query(f"INSERT INTO {table} ({names}) SELECT {names} FROM Python(frame)", "CSV")

            self.select, self.insert = select, insert

    async def timed_select(self, sql: str) -> tuple[float, list[Any]]:
        started = time.perf_counter()
        rows = await asyncio.to_thread(self.select, sql)
        return time.perf_counter() - started, rows

    async def timed_insert(self, table: str, columns: list[list[Any]]) -> float:
        started = time.perf_counter()
        await asyncio.to_thread(self.insert, table, columns)
        return time.perf_counter() - started


def _store(engine: ClickHouseEngine, prefix: str) -> ClickHouseEventStore:
    return ClickHouseEventStore(
        engine, lock=InProcessStreamLock(), single_writer=True, table=f"{prefix}_{uuid.uuid4().hex[:8]}"
    )


# -- (f) and (g) the command cycle and its floor ----------------------------------------------
async def _cycle(repo: EventSourcedRepository[CycleAccount], id: str, n: int) -> None:
    account = await repo.load(id)
    account.record(make_event(n, key=id))
    await repo.save(account)


async def bench_command_cycle(engine: ClickHouseEngine, raw: RawClient) -> dict[str, Any]:
    async with _store(engine, "bench_cycle") as store:
        seed = EventSourcedRepository(CycleAccount, store)
        ids = [f"a{n}" for n in range(100)]
        for id in ids:
            first = CycleAccount(id)
            first.record(make_event(0, key=id))
            await seed.save(first)

        # (g) the floor: a raw point read of one aggregate, then a raw single-row INSERT.
        (row,) = await engine.execute(f"SELECT {', '.join(INSERT_COLUMNS)} FROM {store.table} LIMIT 1")
        scratch = _store(engine, "bench_floor")
        await scratch.start()
        await scratch.close()

        async def floor_cycle(n: int) -> None:
            seconds, _ = await raw.timed_select(
                f"SELECT * FROM {store.table} WHERE stream = 'CycleAccount-{ids[n % 100]}' ORDER BY version"
            )
            reads.append(seconds)
            columns = [[value] for value in row]
            columns[0] = [n + 1]
            inserts.append(await raw.timed_insert(scratch.table, columns))

        # One at a time, in rounds that alternate with the floor's cycles, so both see the
        # same machine (the disk's INSERT latency drifts on a shared machine).
        repo = EventSourcedRepository(CycleAccount, store)  # cold: first loads read
        reads: list[float] = []
        inserts: list[float] = []
        c1_seconds = 0.0
        for round_ in range(10):
            started = time.perf_counter()
            for n in range(100):
                await _cycle(repo, ids[n], round_ * 100 + n)
            c1_seconds += time.perf_counter() - started
            for n in range(10):
                await floor_cycle(round_ * 10 + n)
        c1 = 1000 / c1_seconds

        repo = EventSourcedRepository(CycleAccount, store)

        async def task(id: str) -> None:
            for n in range(20):
                await _cycle(repo, id, n)

        started = time.perf_counter()
        await asyncio.gather(*(task(id) for id in ids))
        c100 = 2000 / (time.perf_counter() - started)
        # The baseline again, right after, on the same machine state (blocking is fine here).
        baseline = bench_eventsourcing(commands=1000)

        floor = len(reads) / (sum(reads) + sum(inserts))
        for table in (store.table, scratch.table):
            await engine.execute(f"DROP TABLE IF EXISTS {table}")
    return {
        "command_cycle_c1_per_s": round(c1),
        "command_cycle_c100_per_s": round(c100),
        "raw_point_read_ms": round(statistics.median(reads) * 1000, 3),
        "raw_single_insert_ms": round(statistics.median(inserts) * 1000, 3),
        "floor_cycle_per_s": round(floor),
        "command_cycle_c1_ratio_to_floor": round(c1 / floor, 3),
        "eventsourcing_save_per_s_beside_c100": baseline["eventsourcing_save_per_s"],
        "command_cycle_c100_ratio_to_eventsourcing": round(c100 / baseline["eventsourcing_save_per_s"], 3),
    }


# -- (h) loading 10,000 events, and from a snapshot ----------------------------------------------
async def bench_load_10k(engine: ClickHouseEngine, raw: RawClient, *, events: int = 10_000) -> dict[str, Any]:
    async with (
        _store(engine, "bench_load10k") as store,
        ClickHouseSnapshotStore(engine, table=f"bench_snap_{uuid.uuid4().hex[:8]}") as snapshots,
    ):
        stream = "CycleAccount-big"
        for start in range(0, events, 1000):
            batch = [make_event(n, key="big", blob="x" * 100) for n in range(start, start + 1000)]
            await store.append(stream, batch, start, aggregate_type="CycleAccount")
        repo = EventSourcedRepository(CycleAccount, store, cache_size=0)
        await repo.load("big")
        loads, raws = [], []
        for _ in range(7):
            started = time.perf_counter()
            account = await repo.load("big")
            loads.append(time.perf_counter() - started)
            seconds, rows = await raw.timed_select(
                f"SELECT * FROM {store.table} WHERE stream = '{stream}' ORDER BY version"
            )
            raws.append(seconds)
        assert account.version == events and len(rows) == events

        with_snapshots = EventSourcedRepository(
            CycleAccount, store, snapshots=snapshots, snapshot_every=events, cache_size=0
        )
        await with_snapshots._take_snapshot(stream, account)
        snap_loads, snap_raws = [], []
        point = f"SELECT * FROM {engine.table(snapshots.table)} WHERE stream = '{stream}' ORDER BY version DESC LIMIT 1"
        for _ in range(50):
            started = time.perf_counter()
            restored = await with_snapshots.load("big")
            snap_loads.append(time.perf_counter() - started)
            seconds, _ = await raw.timed_select(point)
            snap_raws.append(seconds)
        assert restored.total == account.total and restored.version == events
        await engine.execute(f"DROP TABLE IF EXISTS {store.table}")
        await engine.execute(f"DROP TABLE IF EXISTS {engine.table(snapshots.table)}")
    load, raw_load = statistics.median(loads), statistics.median(raws)
    snap, raw_point = statistics.median(snap_loads), statistics.median(snap_raws)
    return {
        "load_10k_ms": round(load * 1000, 1),
        "raw_select_10k_ms": round(raw_load * 1000, 1),
        "load_10k_ratio_to_raw": round(load / raw_load, 3),
        "snapshot_load_ms": round(snap * 1000, 3),
        "raw_snapshot_point_read_ms": round(raw_point * 1000, 3),
        "snapshot_load_ratio_to_raw": round(snap / raw_point, 3),
    }
