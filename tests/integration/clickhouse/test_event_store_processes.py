"""Appends from several OS processes, and the part count under sustained single appends."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.testing.events import make_event
from servers import require_tcp
from servers.clickhouse_server import ClickHouseServer

WORKER = Path(__file__).with_name("_append_worker.py")


async def test_processes_appending_to_the_same_streams_lose_and_duplicate_nothing(
    clickhouse_server: ClickHouseServer, server_engine: ClickHouseEngine, table_name: str
) -> None:
    require_tcp("Redis", "127.0.0.1", 6379, "systemctl start redis-server")
    processes, streams, rounds = 4, 8, 12
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    # Create the table first, so that the workers' migrations do not race on an empty database.
    async with ClickHouseEventStore(server_engine, single_writer=True, table=table_name):
        pass
    start_at = time.time() + 3.0  # every worker imports and connects, then all start together
    args = [
        clickhouse_server.host,
        str(clickhouse_server.port),
        server_engine.database,
        table_name,
        prefix,
        str(streams),
        str(rounds),
        str(start_at),
    ]
    workers = [
        await asyncio.create_subprocess_exec(sys.executable, str(WORKER), *args, stdout=subprocess.PIPE)
        for _ in range(processes)
    ]
    outputs = [await asyncio.wait_for(w.communicate(), 120) for w in workers]
    assert [w.returncode for w in workers] == [0] * processes
    results = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]

    won = [event_id for r in results for event_id in r["won"]]
    conflicts = sum(r["conflicts"] for r in results)
    assert len(won) == streams * rounds
    assert conflicts == streams * rounds * (processes - 1)  # exactly one winner per (stream, version)

    async with ClickHouseEventStore(server_engine, single_writer=True, table=table_name) as store:
        stored = []
        for n in range(streams):
            history = await store.read_stream(f"s{n}")
            assert [e.version for e in history] == list(range(1, rounds + 1))  # none lost, none twice
            stored.extend(history)
        assert sorted(e.event_id for e in stored) == sorted(won)
        everything = await store.read_all(0, 10_000)
        assert [e.position for e in everything] == list(range(1, streams * rounds + 1))


async def test_active_parts_stay_bounded_under_sustained_single_appends(
    any_engine: ClickHouseEngine, table_name: str
) -> None:
    async with ClickHouseEventStore(any_engine, single_writer=True, table=table_name) as store:
        most_parts = 0
        appended = 0
        stop = time.monotonic() + 4.0

        async def writer(n: int) -> None:
            nonlocal appended
            version = 0
            while time.monotonic() < stop:
                version = await store.append(f"w{n}", [make_event(version)], version)
                appended += 1

        async def watch() -> None:
            nonlocal most_parts
            while time.monotonic() < stop:
                most_parts = max(most_parts, await store.active_parts())
                await asyncio.sleep(0.2)

        await asyncio.gather(watch(), *(writer(n) for n in range(20)))
        batches = store.commit_batches
    assert appended > 200
    assert batches < appended / 3  # appends share inserts
    assert most_parts < 100, f"{most_parts} active parts after {batches} inserts"
