"""Read-side figures of the ClickHouse event store, called by `benchmarks/eventstore.py`
(and runnable alone: `.venv/bin/python benchmarks/_eventstore_read.py [--events 200000]`).

(c) `bench_load_aggregate`: load one 100-event aggregate through EventSourcedRepository
    (read_stream + decode + replay), sequentially; p50/p99 in ms, next to the raw
    `SELECT ... WHERE stream = ...` of the same rows through the engine.
(d) `bench_projection_catch_up`: a ProjectionRunner over every event of a store into a
    ClickHouseReadModel (one row per stream, batched writes); events/s, next to a raw
    paged read of the same rows (the ceiling: no decode, no writes).

Both take a started `ClickHouseEngine`; (d) takes the store to project (e.g. the one
benchmark (a) filled) or fills one itself. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any, ClassVar

from pydantic import BaseModel

from bento.adapters.clickhouse.checkpoint_store import ClickHouseCheckpointStore
from bento.adapters.clickhouse.engine import ClickHouseEngine, open_engine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.adapters.clickhouse.read_model import ClickHouseReadModel
from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.adapters.memory.stream_lock import InProcessStreamLock
from bento.application.ports.event_store import StoredEvent
from bento.application.projections import Projection, ProjectionRunner
from bento.application.repository import EventSourcedRepository
from bento.domain.aggregate import AggregateRoot
from bento.domain.events import DomainEvent
from bento.testing.events import ContractEvent, make_event


class BenchAccount(AggregateRoot):
    """Replays ContractEvents: the smallest realistic applier."""

    aggregate_type: ClassVar[str] = "BenchAccount"
    total: int = 0

    def apply_ContractEvent(self, event: ContractEvent) -> None:
        self.total += event.seq


class StreamRow(BaseModel):
    id: str
    events: int
    last_type: str
    last_position: int


class _Everything(frozenset[str]):
    def __contains__(self, item: object) -> bool:
        return True


class StreamSummaries(Projection, name="bench-stream-summaries"):
    """One row per stream, whatever the event types (so it can project any store)."""

    def __init__(self, rows: ClickHouseReadModel[StreamRow]) -> None:
        self.rows = self.use(rows)

    def handled_types(self) -> frozenset[str]:
        return _Everything()

    async def apply(self, event: DomainEvent, stored: StoredEvent) -> None:
        row = StreamRow(
            id=stored.stream, events=stored.version, last_type=stored.event_type, last_position=stored.position
        )
        await self.rows.upsert(row, version=stored.position)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def bench_load_aggregate(engine: ClickHouseEngine, *, events: int = 100, loads: int = 300) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    async with ClickHouseEventStore(
        engine, lock=InProcessStreamLock(), single_writer=True, table=f"bench_load_{suffix}"
    ) as store:
        repo = EventSourcedRepository(BenchAccount, store)
        await store.append(
            "BenchAccount-a1",
            [make_event(n, key="a1", blob="x" * 100) for n in range(events)],
            0,
            aggregate_type="BenchAccount",
        )
        await repo.load("a1")  # warm up
        timings: list[float] = []
        for _ in range(loads):
            started = time.perf_counter()
            account = await repo.load("a1")
            timings.append((time.perf_counter() - started) * 1000)
        assert account.version == events
        raw: list[float] = []
        sql = f"SELECT * FROM {store.table} WHERE stream = %(s)s ORDER BY version"
        for _ in range(loads):
            started = time.perf_counter()
            rows = await engine.execute(sql, {"s": "BenchAccount-a1"})
            raw.append((time.perf_counter() - started) * 1000)
        assert len(rows) == events
        await engine.execute(f"DROP TABLE IF EXISTS {store.table}")
    return {
        "load_events": events,
        "load_p50_ms": round(statistics.median(timings), 3),
        "load_p99_ms": round(_percentile(timings, 0.99), 3),
        "raw_load_p50_ms": round(statistics.median(raw), 3),
        "raw_load_p99_ms": round(_percentile(raw, 0.99), 3),
    }


async def fill_store(store: ClickHouseEventStore, events: int, per_append: int = 100) -> None:
    """`events` ContractEvents as appends of `per_append` to distinct streams, 20 at a time."""
    appends = events // per_append

    async def one(n: int) -> None:
        stream = f"acct-{n}"
        await store.append(stream, [make_event(i, key=stream, blob="x" * 100) for i in range(per_append)], 0)

    for start in range(0, appends, 20):
        await asyncio.gather(*(one(n) for n in range(start, min(start + 20, appends))))


async def bench_projection_catch_up(
    engine: ClickHouseEngine,
    *,
    store: ClickHouseEventStore | None = None,
    events: int = 200_000,
    batch_size: int = 10_000,
) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    own_store = store is None
    if store is None:
        store = ClickHouseEventStore(
            engine, lock=InProcessStreamLock(), single_writer=True, table=f"bench_proj_ev_{suffix}"
        )
        await store.start()
        await fill_store(store, events)
    try:
        head = await store.last_position()
        async with (
            ClickHouseReadModel(engine, StreamRow, table=f"bench_proj_rm_{suffix}") as rows,
            ClickHouseCheckpointStore(engine, table=f"bench_proj_cp_{suffix}") as checkpoints,
        ):
            runner = ProjectionRunner(StreamSummaries(rows), store, checkpoints, batch_size=batch_size)
            started = time.perf_counter()
            applied = await runner.run_until_caught_up()
            elapsed = time.perf_counter() - started
            streams = await rows.count()
            started = time.perf_counter()
            position, raw_rows = 0, 0
            while batch := await store.engine.execute(
                f"SELECT * FROM {store.table} PREWHERE position > %(a)s AND position <= %(b)s ORDER BY position",
                {"a": position, "b": position + batch_size},
            ):
                raw_rows += len(batch)
                position += batch_size
            raw_elapsed = time.perf_counter() - started
            for table in (rows.table, checkpoints.table):
                await engine.execute(f"DROP TABLE IF EXISTS {engine.table(table)}")
        assert applied == head and raw_rows == head
        return {
            "projection_events": applied,
            "projection_rows": streams,
            "projection_seconds": round(elapsed, 2),
            "projection_events_per_s": round(applied / elapsed),
            "raw_read_events_per_s": round(raw_rows / raw_elapsed),
            "projection_ratio_to_raw": round(applied / elapsed / (raw_rows / raw_elapsed), 3),
        }
    finally:
        if own_store:
            await store.close()
            await engine.execute(f"DROP TABLE IF EXISTS {store.table}")


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    from servers.clickhouse_server import ClickHouseServer

    figures: dict[str, Any] = {}
    with ClickHouseServer() as server:
        settings = ClickHouseSettings(mode="server", host=server.host, port=server.port, database="bench")
        async with open_engine(settings) as engine:
            figures["server"] = {
                **await bench_load_aggregate(engine),
                **await bench_projection_catch_up(engine, events=args.events),
            }
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        async with open_engine(ClickHouseSettings(mode="embedded", path=folder, database="bench")) as engine:
            figures["chdb"] = {
                **await bench_load_aggregate(engine),
                **await bench_projection_catch_up(engine, events=args.events),
            }
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    figures = asyncio.run(_main(parser.parse_args()))
    for engine_name, values in figures.items():
        print(
            f"{engine_name}: load p50 {values['load_p50_ms']} ms / p99 {values['load_p99_ms']} ms "
            f"(raw p50 {values['raw_load_p50_ms']} ms); projection {values['projection_events_per_s']} events/s "
            f"over {values['projection_events']} (raw read {values['raw_read_events_per_s']} events/s)"
        )
    print(
        json.dumps(
            {
                "load_p99_ms": figures["server"]["load_p99_ms"],
                "projection_events_per_s": figures["server"]["projection_events_per_s"],
                "chdb_load_p99_ms": figures["chdb"]["load_p99_ms"],
                "chdb_projection_events_per_s": figures["chdb"]["projection_events_per_s"],
                "detail": figures,
            }
        )
    )
