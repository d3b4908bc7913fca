"""Several OS processes on one ClickHouse server table, each configured by the
environment only (as deployments are): the default refuses to start in one line, the
Redis lock is correct, and single-writer mode lets exactly one process write."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from bento.adapters.clickhouse.engine import ClickHouseEngine, open_engine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.adapters.clickhouse.settings import ClickHouseSettings
from bento.application.errors import ConfigurationError, WriterLeaseError
from bento.application.ports.event_store import StoredEvent
from bento.testing.events import make_event
from bento.testing.services import require_tcp
from bento.testing.services.clickhouse_server import ClickHouseServer

WORKER = Path(__file__).with_name("_container_worker.py")
SRC = str(Path(__file__).resolve().parents[3] / "src")
REDIS_URL = "redis://127.0.0.1:6379/0"


def worker_env(server: ClickHouseServer, database: str, table: str, **extra: str) -> dict[str, str]:
    """The environment of a worker: nothing of ours but the ClickHouse server settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_STORE__", "CLICKHOUSE__", "BENTO_"))}
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")])
    env.update(
        {
            "EVENT_STORE__BACKEND": "clickhouse",
            "EVENT_STORE__TABLE": table,
            "CLICKHOUSE__MODE": "server",
            "CLICKHOUSE__HOST": server.host,
            "CLICKHOUSE__PORT": str(server.port),
            "CLICKHOUSE__DATABASE": database,
        }
    )
    env.update(extra)
    return env


async def run_workers(
    env: dict[str, str], cwd: Path, *, processes: int, streams: int, rounds: int, linger: float = 0.0
) -> list[Any]:
    start_at = time.time() + 3.0  # every worker imports and connects, then all start together
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            str(streams),
            str(rounds),
            str(start_at),
            str(linger),
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    outputs = [await asyncio.wait_for(w.communicate(), 120) for w in workers]
    assert [w.returncode for w in workers] == [0] * processes, [err.decode()[-2000:] for _, err in outputs]
    return [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]


async def stored_events(engine: ClickHouseEngine, table: str) -> list[StoredEvent]:
    # single_writer only declares the mode; a store that never appends never takes the lease.
    async with ClickHouseEventStore(engine, table=table, single_writer=True) as store:
        return await store.read_all(0, 100_000)


async def test_default_settings_refuse_to_start_in_one_line(
    clickhouse_server: ClickHouseServer, server_engine: ClickHouseEngine, table_name: str, tmp_path: Path
) -> None:
    env = worker_env(clickhouse_server, server_engine.database, table_name)
    results = await run_workers(env, tmp_path, processes=3, streams=2, rounds=2)
    for result in results:
        assert result["won"] == [] and len(result["errors"]) == 1
        (error,) = result["errors"]
        assert error.startswith("ConfigurationError: ") and "\n" not in error
        assert "STREAM_LOCK__BACKEND=redis" in error and "STREAM_LOCK__BACKEND=single-writer" in error
    rows = await server_engine.execute(
        "SELECT count() FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        {"db": server_engine.database, "t": table_name},
    )
    assert rows[0][0] == 0  # refused before it touched anything


async def test_processes_sharing_the_redis_lock_are_correct_and_a_follower_misses_nothing(
    clickhouse_server: ClickHouseServer, server_engine: ClickHouseEngine, table_name: str, tmp_path: Path
) -> None:
    require_tcp("Redis", "127.0.0.1", 6379, "systemctl start redis-server")
    import redis.asyncio as aioredis

    processes, streams, rounds = 4, 6, 8
    await stored_events(server_engine, table_name)  # create the table before the workers race to
    env = worker_env(
        clickhouse_server,
        server_engine.database,
        table_name,
        STREAM_LOCK__BACKEND="redis",
        STREAM_LOCK__URL=REDIS_URL,
    )
    followed: list[StoredEvent] = []
    done = asyncio.Event()

    async def follow() -> None:  # a read_all follower checkpointing as it goes
        async with ClickHouseEventStore(server_engine, table=table_name, single_writer=True) as store:
            while True:
                finished = done.is_set()
                after = followed[-1].position if followed else 0
                followed.extend(await store.read_all(after, 50))
                if finished and len(followed) == after:
                    return
                await asyncio.sleep(0.01)

    follower = asyncio.create_task(follow())
    results = await run_workers(env, tmp_path, processes=processes, streams=streams, rounds=rounds)
    done.set()
    await follower

    assert [r["errors"] for r in results] == [[]] * processes
    won = sorted(event_id for r in results for event_id in r["won"])
    assert len(won) == streams * rounds
    assert sum(r["conflicts"] for r in results) == streams * rounds * (processes - 1)
    stored = await stored_events(server_engine, table_name)
    assert [e.position for e in stored] == list(range(1, streams * rounds + 1))  # no duplicate, no gap
    assert sorted(e.event_id for e in stored) == won
    for n in range(streams):
        assert sorted(e.version for e in stored if e.stream == f"s{n}") == list(range(1, rounds + 1))
    assert [e.event_id for e in followed] == [e.event_id for e in stored]  # the follower skipped nothing

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        where = f"{server_engine.database}.{table_name}"
        assert await client.exists(f"bento:lock:$append:{where}") == 0  # every worker released it on exit
        assert await client.pttl(f"bento:lock:$commit:{where}") > 0  # the marker expires
    finally:
        await client.aclose()


async def test_single_writer_processes_exactly_one_writes(
    clickhouse_server: ClickHouseServer, server_engine: ClickHouseEngine, table_name: str, tmp_path: Path
) -> None:
    processes, streams, rounds = 3, 4, 5
    await stored_events(server_engine, table_name)
    env = worker_env(clickhouse_server, server_engine.database, table_name, STREAM_LOCK__BACKEND="single-writer")
    # Every worker stays open 3 s after its appends, so the writers overlap in time.
    results = await run_workers(env, tmp_path, processes=processes, streams=streams, rounds=rounds, linger=3.0)

    writers = [r for r in results if not r["errors"]]
    refused = [r for r in results if r["errors"]]
    assert len(writers) == 1 and len(refused) == processes - 1
    assert len(writers[0]["won"]) == streams * rounds and writers[0]["conflicts"] == 0
    for result in refused:
        assert result["won"] == [] and result["conflicts"] == 0
        assert all(e.startswith("WriterLeaseError: another process is the single writer") for e in result["errors"])
    stored = await stored_events(server_engine, table_name)
    assert sorted(e.event_id for e in stored) == sorted(writers[0]["won"])  # nothing of the others
    assert [e.position for e in stored] == list(range(1, streams * rounds + 1))


async def test_a_second_single_writer_fails_before_it_commits_and_takes_over_after_a_close(
    clickhouse_server_settings: ClickHouseSettings, table_name: str
) -> None:
    # Two engines stand for two processes (the lease is shared by the stores of one engine).
    async with open_engine(clickhouse_server_settings) as one, open_engine(clickhouse_server_settings) as two:
        async with ClickHouseEventStore(one, table=table_name, single_writer=True) as first:
            assert await first.append("s", [make_event(1)], 0) == 1
            async with ClickHouseEventStore(two, table=table_name, single_writer=True) as second:
                with pytest.raises(WriterLeaseError, match="another process is the single writer"):
                    await second.append("s", [make_event(2)], 1)
                with pytest.raises(WriterLeaseError):
                    await second.append("other", [make_event(3)], 0)
                assert [e.version for e in await second.read_stream("s")] == [1]  # reads still work
                assert await first.append("s", [make_event(4)], 1) == 2
        # `first` closed and dropped its lease: the other process may write now, at once.
        async with ClickHouseEventStore(two, table=table_name, single_writer=True) as second:
            assert await second.append("s", [make_event(5)], 2) == 3
        events = await stored_events(one, table_name)
    assert [(e.stream, e.version, e.position) for e in events] == [("s", 1, 1), ("s", 2, 2), ("s", 3, 3)]


async def test_an_in_process_lock_on_a_server_refuses_to_start(server_engine: ClickHouseEngine) -> None:
    store = ClickHouseEventStore(server_engine, table=f"t_{uuid.uuid4().hex[:8]}")
    with pytest.raises(ConfigurationError) as refused:
        await store.start()
    assert "\n" not in str(refused.value) and "single_writer=True" in str(refused.value)
    await store.close()


async def test_a_dead_single_writer_is_taken_over_after_its_lease(
    clickhouse_server: ClickHouseServer,
    clickhouse_server_settings: ClickHouseSettings,
    table_name: str,
    tmp_path: Path,
) -> None:
    env = worker_env(
        clickhouse_server, clickhouse_server_settings.database, table_name, STREAM_LOCK__BACKEND="single-writer"
    )
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        "2",
        "3",
        str(time.time()),
        "60",
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        async with open_engine(clickhouse_server_settings) as engine:
            async with asyncio.timeout(60):
                await _until_stored(engine, table_name, 6)
            holder.kill()  # dies holding the lease: no close, no drop
            await holder.wait()
            async with ClickHouseEventStore(engine, table=table_name, single_writer=True, writer_lease=4.0) as taker:
                with pytest.raises(WriterLeaseError):
                    await taker.append("s0", [make_event(9)], 3)  # its heartbeat is still fresh
                began = time.monotonic()
                while True:
                    try:
                        assert await taker.append("s0", [make_event(9)], 3) == 4  # reloaded, not stale
                        break
                    except WriterLeaseError:
                        assert time.monotonic() - began < 15
                        await asyncio.sleep(0.5)
            events = await stored_events(engine, table_name)
        assert [e.position for e in events] == list(range(1, 8))
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


async def _until_stored(engine: ClickHouseEngine, table: str, count: int) -> None:
    while not await _exists(engine, table) or len(await stored_events(engine, table)) < count:  # noqa: ASYNC110
        await asyncio.sleep(0.2)  # another process writes: there is no event to wait on


async def _exists(engine: ClickHouseEngine, table: str) -> bool:
    rows = await engine.execute(
        "SELECT count() FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        {"db": engine.database, "t": table},
    )
    return bool(rows[0][0])


async def test_embedded_default_works_and_a_second_process_cannot_open_the_folder(tmp_path: Path) -> None:
    pytest.importorskip("chdb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENT_STORE__", "CLICKHOUSE__", "BENTO_"))}
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")])
    env.update({"EVENT_STORE__BACKEND": "clickhouse", "CLICKHOUSE__PATH": str(tmp_path / "chdb")})
    # The first stays open 8 s after its appends; the second starts 3 s later, while it does.
    start_at = time.time() + 2.0
    first = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        "2",
        "3",
        str(start_at),
        "8",
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    await asyncio.sleep(5.0)
    second = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        "2",
        "3",
        str(start_at),
        "0",
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    (out1, err1), (out2, err2) = await asyncio.gather(first.communicate(), second.communicate())
    one = json.loads(out1.decode().strip().splitlines()[-1])
    two = json.loads(out2.decode().strip().splitlines()[-1])
    assert one["errors"] == [] and len(one["won"]) == 6, err1.decode()[-2000:]  # the default just works
    assert two["won"] == [] and len(two["errors"]) == 1, err2.decode()[-2000:]
    assert "cannot open the embedded ClickHouse folder" in two["errors"][0]
