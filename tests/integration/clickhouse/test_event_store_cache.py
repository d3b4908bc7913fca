"""The version cache and its commit marker: a store that skips the version query must
still see every other writer's commits (same process through the engine's markers,
other processes through Redis), and must reload after anything it cannot vouch for."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.adapters.memory.stream_lock import InProcessStreamLock
from bento.adapters.redis.stream_lock import RedisStreamLock
from bento.application.errors import ConcurrencyError
from bento.application.ports.stream_lock import StreamLock
from bento.testing.events import make_event
from servers import require_tcp

REDIS_URL = "redis://127.0.0.1:6379/0"


class PlainLock:
    """A StreamLock with no commit marker (like a user's own lock): never trusts a cache."""

    def __init__(self) -> None:
        self._inner = InProcessStreamLock()

    @asynccontextmanager
    async def hold(self, streams: Collection[str], *, timeout: float = 10.0) -> AsyncIterator[None]:
        async with self._inner.hold(streams, timeout=timeout):
            yield


async def alternate(first: ClickHouseEventStore, second: ClickHouseEventStore) -> None:
    """Two writers of one table taking turns; each must see the other's commits."""
    assert await first.append("s", [make_event(1)], 0) == 1
    assert await second.append("s", [make_event(2)], 1) == 2
    assert await first.known_version("s") in (None, 2)  # never its stale 1
    with pytest.raises(ConcurrencyError) as stale:
        await first.append("s", [make_event(3)], 1)  # its cache said 1; the table says 2
    assert stale.value.actual == 2
    assert await first.append("s", [make_event(3)], 2) == 3
    assert await second.append("new", [make_event(4)], 0) == 1  # a stream `first` never saw
    assert await first.known_version("new") in (None, 1)
    with pytest.raises(ConcurrencyError):
        await first.append("new", [make_event(5)], 0)
    # Both at once, many times: still exactly one winner per version, positions gap-free.
    results = await asyncio.gather(
        *(store.append("s", [make_event(10 + n)], 3) for n, store in enumerate([first, second] * 5)),
        return_exceptions=True,
    )
    assert sum(1 for r in results if r == 4) == 1
    assert sum(1 for r in results if isinstance(r, ConcurrencyError)) == 9
    everything = await first.read_all(0, 100)
    assert [e.position for e in everything] == list(range(1, 6))
    assert [e.version for e in await first.read_stream("s")] == [1, 2, 3, 4]


@pytest.mark.parametrize("cache", [100_000, 1], ids=["complete-cache", "tiny-cache"])
async def test_stores_sharing_a_local_lock_see_each_others_commits(
    any_engine: ClickHouseEngine, table_name: str, cache: int
) -> None:
    lock = InProcessStreamLock()
    async with (
        ClickHouseEventStore(
            any_engine, lock=lock, table=table_name, version_cache_size=cache, single_writer=True
        ) as first,
        ClickHouseEventStore(
            any_engine, lock=lock, table=table_name, version_cache_size=cache, single_writer=True
        ) as second,
    ):
        await alternate(first, second)


async def test_stores_on_separate_redis_clients_see_each_others_commits(
    server_engine: ClickHouseEngine, table_name: str
) -> None:
    # Two Redis clients on one prefix: what two processes have.
    require_tcp("Redis", "127.0.0.1", 6379, "systemctl start redis-server")
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    async with (
        RedisStreamLock(REDIS_URL, prefix=prefix) as one,
        RedisStreamLock(REDIS_URL, prefix=prefix) as two,
        ClickHouseEventStore(server_engine, lock=one, table=table_name) as first,
        ClickHouseEventStore(server_engine, lock=two, table=table_name) as second,
    ):
        await alternate(first, second)


async def test_a_lock_without_a_marker_reads_versions_every_time(any_engine: ClickHouseEngine, table_name: str) -> None:
    lock: StreamLock = PlainLock()
    async with (
        ClickHouseEventStore(any_engine, lock=lock, table=table_name) as first,
        ClickHouseEventStore(any_engine, lock=lock, table=table_name) as second,
    ):
        await alternate(first, second)


async def test_a_commit_that_failed_makes_every_writer_reload(
    embedded_engine: ClickHouseEngine, table_name: str
) -> None:
    lock = InProcessStreamLock()
    async with (
        ClickHouseEventStore(embedded_engine, lock=lock, table=table_name) as store,
        ClickHouseEventStore(embedded_engine, lock=lock, table=table_name, max_commit_seconds=0.0) as late,
    ):
        assert await store.append("s", [make_event(1)], 0) == 1
        with pytest.raises(Exception):  # noqa: B017 - LockTimeoutError: it overstayed, nothing written
            await late.append("s", [make_event(2)], 1)
        assert embedded_engine.commit_marks.get(f"$commit:{embedded_engine.database}.{table_name}") is None
        assert await store.append("s", [make_event(3)], 1) == 2
        assert [e.position for e in await store.read_all(0, 10)] == [1, 2]


async def test_a_sole_writer_vouches_for_its_versions(any_engine: ClickHouseEngine, table_name: str) -> None:
    # What lets a repository skip the read: chdb, or a server store holding its lease.
    async with ClickHouseEventStore(
        any_engine, lock=InProcessStreamLock(), table=table_name, single_writer=True
    ) as store:
        assert await store.known_version("s") is None  # nothing committed yet: no proof
        assert await store.append("s", [make_event(1), make_event(2)], 0) == 2
        assert await store.known_version("s") == 2
        assert await store.known_version("never-written") == 0  # the cache is complete


async def test_a_store_behind_redis_does_not_vouch(server_engine: ClickHouseEngine, table_name: str) -> None:
    require_tcp("Redis", "127.0.0.1", 6379, "systemctl start redis-server")
    async with (
        RedisStreamLock(REDIS_URL, prefix=f"test:{uuid.uuid4().hex[:8]}:") as lock,
        ClickHouseEventStore(server_engine, lock=lock, table=table_name) as store,
    ):
        await store.append("s", [make_event(1)], 0)
        assert await store.known_version("s") is None


# -- the marker in Redis -------------------------------------------------------------------
Locks = tuple[RedisStreamLock, RedisStreamLock, Any]


@pytest.fixture
async def redis_locks() -> AsyncIterator[Locks]:
    """Two locks on one prefix (two processes), and a plain client to look at the keys."""
    require_tcp("Redis", "127.0.0.1", 6379, "systemctl start redis-server")
    import redis.asyncio as aioredis

    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    client = aioredis.Redis.from_url(REDIS_URL)
    async with RedisStreamLock(REDIS_URL, prefix=prefix) as one, RedisStreamLock(REDIS_URL, prefix=prefix) as two:
        yield one, two, client
    await client.aclose()


async def test_the_marker_is_read_on_acquire_and_published_on_release(redis_locks: Locks) -> None:
    one, two, client = redis_locks
    async with one.hold_marked(["t"], marker="m") as mark:
        assert mark.seen is None
        mark.publish("c:first")
    async with two.hold_marked(["t"], marker="m") as mark:
        assert mark.seen == "c:first"
        # While a holder commits, the marker is busy: nobody may take it for fresh.
        assert (await client.get(two.prefix + "m")).decode().startswith("busy:")
        mark.publish("c:second")
    async with one.hold_marked(["t"], marker="m") as mark:
        assert mark.seen == "c:second"


async def test_a_failed_holder_leaves_no_marker(redis_locks: Locks) -> None:
    one, two, _ = redis_locks
    async with one.hold_marked(["t"], marker="m") as mark:
        mark.publish("c:first")
    with pytest.raises(RuntimeError):
        async with two.hold_marked(["t"], marker="m"):
            raise RuntimeError("the INSERT failed")
    async with one.hold_marked(["t"], marker="m") as mark:
        assert mark.seen is None  # so `one` reloads, although it published "c:first" last


@pytest.mark.parametrize("first_out", ["zombie", "new-holder"])
async def test_a_holder_that_lost_its_lease_poisons_the_marker(redis_locks: Locks, first_out: str) -> None:
    one, two, client = redis_locks
    zombie = one.hold_marked(["t"], marker="m")
    stale = await zombie.__aenter__()
    await client.delete(one.prefix + "t")  # its lease ran out while it was stalled
    holder = two.hold_marked(["t"], marker="m", timeout=1)
    current = await holder.__aenter__()  # another process took the lock meanwhile
    stale.publish("c:zombie")
    current.publish("c:holder")
    for leaving in [zombie, holder] if first_out == "zombie" else [holder, zombie]:
        await leaving.__aexit__(None, None, None)
    # The zombie may have written rows the new holder never read: nobody may trust a cache.
    async with two.hold_marked(["t"], marker="m") as mark:
        assert mark.seen is None or not mark.seen.startswith("c:")
