"""ClickHouse event store benchmark: `.venv/bin/python benchmarks/eventstore.py [--events 200000]`.

Starts a private clickhouse-server (as the tests do) and an embedded chdb folder, and
measures on each engine, in one run:

(a) append `--events` events as appends of 100 (20 in flight, like command handlers)
    through ClickHouseEventStore; then the same rows (read back, already encoded) are
    written by the raw client in the same shape: one INSERT of 100 rows per append,
    sequentially (clickhouse-driver for the server; chdb's session for embedded), timed
    over the first 300 appends. The store also pays the event encoding.
    `append_ratio_to_raw` = store events/s / raw events/s; `append_ratio_to_raw_10k`
    against raw 10,000-row inserts of all the rows (the issue's target: >= 0.5). With 20
    callers a group commit can hold at most 2,000 events, so the same appends also run
    from 200 callers, a backlog that fills 10,000-event commits like the raw inserts:
    `append_ratio_to_raw_10k_c200`.
(b) 10,000 single-event appends to distinct streams from 100 concurrent tasks:
    appends/s and the active part count at the end (and with the Redis lock).
    `--only b` runs (b) alone (`--runs N` times, reporting the median) to iterate fast.
(c) load a 100-event aggregate: p50/p99 (benchmarks/_eventstore_read.py).
(d) projection catch-up over the store filled by (a) into a ClickHouse read model.
(e)-(h) in benchmarks/_eventstore_cycle.py: the `eventsourcing` library on SQLite
    (extra `bench`; run once, the baseline of both engines), the command cycle one at
    a time and 100 in flight, its raw floor, and loading 10,000 events (and a snapshot).

Targets (issue 18): command_cycle_c100_ratio_to_eventsourcing >= 2 (against its
per-command save), command_cycle_c1_ratio_to_floor >= 0.8, append_ratio_to_raw_10k
>= 0.5, load_10k_ratio_to_raw <= 3, snapshot_load_ratio_to_raw <= 1.5,
projection_events_per_s >= 100,000 and projection_ratio_to_raw >= 0.6.

Every store gets an explicit lock (one process here): an `InProcessStreamLock` in
single-writer mode, or a `RedisStreamLock` where named. The last line printed is one JSON object with the
figures. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

# Running this file puts benchmarks/ first on sys.path, where benchmarks/redis.py would
# shadow the redis package: drop it, and load the read-side helpers by path instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def _load_benchmarks(name: str) -> Any:
    """A sibling module loaded by path, once (registered, so eventsourcing can import it)."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


from bento.adapters.clickhouse._event_store_schema import INSERT_COLUMNS  # noqa: E402
from bento.adapters.clickhouse.engine import ClickHouseEngine, open_engine  # noqa: E402
from bento.adapters.clickhouse.event_store import ClickHouseEventStore  # noqa: E402
from bento.adapters.clickhouse.settings import ClickHouseSettings  # noqa: E402
from bento.adapters.memory.stream_lock import InProcessStreamLock  # noqa: E402
from bento.adapters.redis.stream_lock import RedisStreamLock  # noqa: E402
from bento.application.ports.stream_lock import StreamLock  # noqa: E402
from bento.domain.events import DomainEvent  # noqa: E402
from bento.testing.events import make_event  # noqa: E402

# The private test-server launchers live in tests/servers (imported as `servers`).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import tcp_reachable  # noqa: E402
from servers.clickhouse_server import ClickHouseServer  # noqa: E402

PER_APPEND = 100
IN_FLIGHT = 20
BACKLOG_IN_FLIGHT = 200
RAW_SAMPLE = 300


Appends = list[tuple[str, list[DomainEvent]]]


def build_appends(events: int) -> Appends:
    """The appends of (a), built once (outside the timings) and reused for both engines."""
    return [
        (f"acct-{n}", [make_event(i, key=f"acct-{n}", blob="x" * 100) for i in range(PER_APPEND)])
        for n in range(events // PER_APPEND)
    ]


async def stored_rows(store: ClickHouseEventStore) -> list[list[list[Any]]]:
    """The rows the store wrote, read back in position order and cut into one columnar
    batch per append: exactly the same rows for the raw client to insert."""
    rows: list[tuple[Any, ...]] = []
    page = 50_000
    while batch := await store.engine.execute(
        f"SELECT {', '.join(INSERT_COLUMNS)} FROM {store.table} "
        "PREWHERE position > %(a)s AND position <= %(b)s ORDER BY position",
        {"a": len(rows), "b": len(rows) + page},
    ):
        rows.extend(batch)
    return [
        [list(column) for column in zip(*rows[start : start + PER_APPEND], strict=True)]
        for start in range(0, len(rows), PER_APPEND)
    ]


async def raw_insert(raw: Any, table: str, batches: list[list[list[Any]]], group: int) -> float:
    """events/s writing `batches` through the raw client, `group` batches per INSERT
    (merging them is outside the timing)."""
    merged = [
        [[value for b in batches[start : start + group] for value in b[c]] for c in range(len(INSERT_COLUMNS))]
        for start in range(0, len(batches), group)
    ]
    seconds = 0.0
    for columns in merged:
        seconds += await raw.timed_insert(table, columns)
    return sum(len(b[0]) for b in batches) / seconds


async def store_appends(
    engine: ClickHouseEngine, appends: Appends, in_flight: int
) -> tuple[float, ClickHouseEventStore]:
    """events/s appending `appends` through a fresh store from `in_flight` concurrent callers."""
    store = ClickHouseEventStore(
        engine, lock=InProcessStreamLock(), single_writer=True, table=f"bench_append_{uuid.uuid4().hex[:8]}"
    )
    await store.start()
    events = sum(len(batch) for _, batch in appends)
    queue = iter(appends)

    async def worker() -> None:
        for stream, batch in queue:
            await store.append(stream, batch, 0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return events / (time.perf_counter() - started), store


async def bench_appends(
    engine: ClickHouseEngine, appends: Appends, raw_client: Any
) -> tuple[dict[str, Any], ClickHouseEventStore]:
    suffix = uuid.uuid4().hex[:8]
    # With 20 callers a group commit holds at most 20 x 100 events; BACKLOG callers let it
    # fill the 10,000-event parts that the raw 10,000-row inserts are compared with.
    backlog_rate, backlog_store = await store_appends(engine, appends, BACKLOG_IN_FLIGHT)
    backlog_batches = backlog_store.commit_batches
    await backlog_store.close()
    await engine.execute(f"DROP TABLE IF EXISTS {backlog_store.table}")
    store_rate, store = await store_appends(engine, appends, IN_FLIGHT)
    store_batches = store.commit_batches

    batches = await stored_rows(store)
    raw_tables = []
    rates = {}
    # 100-row inserts are slow by nature: time them on the first RAW_SAMPLE appends only.
    for group, sample in ((1, batches[:RAW_SAMPLE]), (100, batches)):
        raw = ClickHouseEventStore(
            engine, lock=InProcessStreamLock(), single_writer=True, table=f"bench_raw_{group}_{suffix}"
        )
        await raw.start()  # same schema, created by the migration
        await raw.close()
        raw_tables.append(raw.table)
        rates[group] = await raw_insert(raw_client, raw.table, sample, group)
    for table in raw_tables:
        await engine.execute(f"DROP TABLE IF EXISTS {table}")
    return {
        "append_events_per_s": round(store_rate),
        "append_inserts": store_batches,
        f"append_events_per_s_c{BACKLOG_IN_FLIGHT}": round(backlog_rate),
        f"append_inserts_c{BACKLOG_IN_FLIGHT}": backlog_batches,
        "raw_insert_events_per_s": round(rates[1]),
        "raw_10k_insert_events_per_s": round(rates[100]),
        "append_ratio_to_raw": round(store_rate / rates[1], 3),
        "append_ratio_to_raw_10k": round(store_rate / rates[100], 3),
        f"append_ratio_to_raw_10k_c{BACKLOG_IN_FLIGHT}": round(backlog_rate / rates[100], 3),
    }, store


class InsertTimer:
    """Times the store's own INSERT calls during (b): the floor the closed loop of 100
    tasks cannot beat (each task waits for one INSERT per append), measured in the run."""

    def __init__(self, engine: ClickHouseEngine) -> None:
        self.engine = engine
        self.seconds: list[float] = []
        self._insert = engine.insert

    async def _timed(self, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        await self._insert(*args, **kwargs)
        self.seconds.append(time.perf_counter() - started)

    def __enter__(self) -> InsertTimer:
        self.engine.insert = self._timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.engine.insert  # back to the class's method


async def single_appends_once(engine: ClickHouseEngine, *, redis: bool) -> tuple[float, int, int, float]:
    """One run of (b): appends/s, active parts at the end, INSERTs, median INSERT seconds."""
    lock: StreamLock = RedisStreamLock(prefix=f"bench:{uuid.uuid4().hex[:8]}:") if redis else InProcessStreamLock()
    table = f"bench_single_{uuid.uuid4().hex[:8]}"
    async with ClickHouseEventStore(engine, lock=lock, single_writer=not redis, table=table) as store:

        async def task(t: int) -> None:
            for n in range(100):
                await store.append(f"single-{t}-{n}", [make_event(n)], 0)

        with InsertTimer(engine) as timer:
            started = time.perf_counter()
            await asyncio.gather(*(task(t) for t in range(100)))
            rate = 10_000 / (time.perf_counter() - started)
        parts = await store.active_parts()
        batches = store.commit_batches
        await engine.execute(f"DROP TABLE IF EXISTS {store.table}")
    if isinstance(lock, RedisStreamLock):
        await lock.close()
    return rate, parts, batches, statistics.median(timer.seconds)


async def bench_single_appends(engine: ClickHouseEngine, *, redis: bool = False, runs: int = 1) -> dict[str, Any]:
    results = [await single_appends_once(engine, redis=redis) for _ in range(runs)]
    rate, parts, batches, insert_seconds = sorted(results)[len(results) // 2]  # the median run
    key = "single_appends_per_s_redis_lock" if redis else "single_appends_per_s"
    figures: dict[str, Any] = {key: round(rate), ("inserts_redis_lock" if redis else "single_inserts"): batches}
    if runs > 1:
        figures[key + "_runs"] = [round(r[0]) for r in results]
    if not redis:
        figures["active_parts"] = parts
        # 100 tasks each wait for one INSERT per append: 100 / INSERT time is the ceiling.
        figures["single_insert_p50_ms"] = round(insert_seconds * 1000, 2)
        figures["single_ceiling_per_s"] = round(10_000 / batches / insert_seconds)
    return figures


async def bench_single(engine: ClickHouseEngine, runs: int) -> dict[str, Any]:
    single = await bench_single_appends(engine, runs=runs)
    if engine.mode == "server" and tcp_reachable("127.0.0.1", 6379):
        single |= await bench_single_appends(engine, redis=True, runs=runs)
    print(f"  (b) {single}", flush=True)
    return single


async def bench_engine(
    engine: ClickHouseEngine, appends: Appends, runs: int, baseline: dict[str, Any]
) -> dict[str, Any]:
    cycle_side = _load_benchmarks("_eventstore_cycle")
    raw = cycle_side.RawClient(engine)
    figures, store = await bench_appends(engine, appends, raw)
    print(f"  (a) {figures}", flush=True)
    single = await bench_single(engine, runs)
    read_side = _load_benchmarks("_eventstore_read")
    load = await read_side.bench_load_aggregate(engine)
    print(f"  (c) {load}", flush=True)
    projection = await read_side.bench_projection_catch_up(engine, store=store)
    print(f"  (d) {projection}", flush=True)
    await store.close()
    await engine.execute(f"DROP TABLE IF EXISTS {store.table}")
    cycle = await cycle_side.bench_command_cycle(engine, raw)
    cycle["command_cycle_c100_ratio_to_first_eventsourcing"] = round(
        cycle["command_cycle_c100_per_s"] / baseline["eventsourcing_save_per_s"], 3
    )
    print(f"  (f, g) {cycle}", flush=True)
    load_10k = await cycle_side.bench_load_10k(engine, raw)
    print(f"  (h) {load_10k}", flush=True)
    return {**figures, **single, **load, **projection, **cycle, **load_10k}


async def main(events: int, data_dir: str | None, only: str | None, runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    appends = build_appends(events) if only is None else []
    baseline: dict[str, Any] = {}
    if only is None:
        baseline = _load_benchmarks("_eventstore_cycle").bench_eventsourcing()
        print(f"eventsourcing on SQLite: {baseline}", flush=True)
        results["eventsourcing"] = baseline

    async def bench(engine: ClickHouseEngine) -> dict[str, Any]:
        if only == "b":
            return await bench_single(engine, runs)
        return await bench_engine(engine, appends, runs, baseline)

    folder = tempfile.mkdtemp(prefix="bento-bench-ch-", dir=data_dir) if data_dir else None
    with ClickHouseServer(folder) as server:
        print(f"clickhouse-server 18.16 on 127.0.0.1:{server.port}", flush=True)
        settings = ClickHouseSettings(mode="server", host=server.host, port=server.port, database="bench")
        async with open_engine(settings) as engine:
            results["server"] = await bench(engine)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=data_dir) as chdb_folder:
        print(f"chdb in {chdb_folder}", flush=True)
        async with open_engine(ClickHouseSettings(mode="embedded", path=chdb_folder, database="bench")) as engine:
            results["chdb"] = await bench(engine)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="ClickHouse event store benchmark")
    parser.add_argument("--events", type=int, default=200_000, help="events for (a) and (d)")
    parser.add_argument(
        "--data-dir",
        help="parent folder of the server's and chdb's data (default: the "
        "system temp folder; e.g. /dev/shm to take the disk out of the figures)",
    )
    parser.add_argument("--only", choices=["b"], help="run only (b), the single-append figures")
    parser.add_argument("--runs", type=int, default=1, help="runs of (b) per engine and lock; the median is kept")
    options = parser.parse_args()
    figures = asyncio.run(main(options.events, options.data_dir, options.only, max(options.runs, 1)))
    server, chdb = figures["server"], figures["chdb"]
    if options.only == "b":
        print(json.dumps({"data_dir": options.data_dir or tempfile.gettempdir(), "server": server, "chdb": chdb}))
        sys.exit(0)
    keys = (
        "command_cycle_c100_ratio_to_eventsourcing",
        "command_cycle_c1_ratio_to_floor",
        "append_ratio_to_raw_10k",
        "append_ratio_to_raw_10k_c200",
        "load_10k_ratio_to_raw",
        "snapshot_load_ratio_to_raw",
        "projection_events_per_s",
        "projection_ratio_to_raw",
    )
    for name in ("server", "chdb"):
        print(f"{name}: " + ", ".join(f"{k} {figures[name][k]}" for k in keys))
    print(
        json.dumps(
            {
                "data_dir": options.data_dir or tempfile.gettempdir(),
                **{k: server[k] for k in keys},
                "chdb": {k: chdb[k] for k in keys},
                "detail": figures,
            }
        )
    )
