"""EventStoreContract on both ClickHouse engines: embedded chdb and a private server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.eventstore.clickhouse import ClickHouseEventStore
from bento.application.errors import ConcurrencyError, LockTimeoutError
from bento.application.ports.event_store import EventStore
from bento.testing.contracts.event_store import EventStoreContract
from bento.testing.events import make_event


class TestClickHouseEventStoreEmbedded(EventStoreContract):
    @pytest.fixture
    async def event_store(self, embedded_engine: ClickHouseEngine, table_name: str) -> AsyncIterator[EventStore]:
        async with ClickHouseEventStore(embedded_engine, table=table_name) as store:
            yield store


class TestClickHouseEventStoreServer(EventStoreContract):
    @pytest.fixture
    async def event_store(self, server_engine: ClickHouseEngine, table_name: str) -> AsyncIterator[EventStore]:
        async with ClickHouseEventStore(server_engine, table=table_name) as store:
            yield store


@pytest.fixture
async def store(any_engine: ClickHouseEngine, table_name: str) -> AsyncIterator[ClickHouseEventStore]:
    async with ClickHouseEventStore(any_engine, table=table_name) as store:
        yield store


async def test_concurrent_single_appends_share_inserts(store: ClickHouseEventStore) -> None:
    import asyncio

    results = await asyncio.gather(*(store.append(f"s-{n}", [make_event(n)], 0) for n in range(600)))
    assert results == [1] * 600  # more streams in one batch than one version query asks for
    assert store.commit_batches < 40  # group commit: far fewer INSERTs than appends
    everything = await store.read_all(0, 1000)
    assert [e.position for e in everything] == list(range(1, 601))


async def test_seed_conveniences_key_streams_by_aggregate(store: ClickHouseEventStore) -> None:
    events = [make_event(n).with_metadata(aggregate_type="Order", aggregate_id="o-1") for n in range(3)]
    assert await store.save_events(events, expected_version=0) == 3
    loaded = await store.get_events("Order", "o-1", from_version=2)
    assert [e.version for e in loaded] == [2, 3]
    assert all(e.stream == "Order-o-1" and e.aggregate_type == "Order" for e in loaded)
    with pytest.raises(ConcurrencyError):
        await store.save_events(events, expected_version=0)


async def test_migrations_run_once_and_reopen_keeps_data(store: ClickHouseEventStore) -> None:
    await store.append("keep", [make_event(1)], 0)
    async with ClickHouseEventStore(store.engine, table=store.table_name) as again:
        assert await again.stream_version("keep") == 1
    rows = await store.engine.execute(
        f"SELECT count() FROM {store.engine.table('bento_migrations')} WHERE scope = %(s)s",
        {"s": f"eventstore:{store.table_name}"},
    )
    assert rows == [(1,)]


async def test_close_flushes_pending_appends(store: ClickHouseEventStore) -> None:
    import asyncio

    pending = [asyncio.create_task(store.append(f"f-{n}", [make_event(n)], 0)) for n in range(20)]
    await asyncio.sleep(0)
    await store.close()
    assert [await p for p in pending] == [1] * 20
    assert await store.last_position() == 20


NASTY = "it's \\ \"quoted\" é✓\n\t\0 %(x)s '; DROP TABLE t; --"


async def test_parameters_are_quoted_safely_on_both_engines(any_engine: ClickHouseEngine, table_name: str) -> None:
    table = any_engine.table(table_name)
    await any_engine.execute(f"CREATE TABLE {table} (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
    await any_engine.insert(table_name, ["id", "s"], [(1, NASTY), (2, "plain")])
    assert await any_engine.execute(f"SELECT id, s FROM {table} WHERE s = %(s)s", {"s": NASTY}) == [(1, NASTY)]
    assert await any_engine.execute(
        f"SELECT count() FROM {table} WHERE s IN %(values)s", {"values": (NASTY, "plain", "other")}
    ) == [(2,)]
    with pytest.raises(ValueError):
        any_engine.table("events; DROP TABLE x")


async def test_a_commit_that_overstays_its_lock_writes_nothing(
    embedded_engine: ClickHouseEngine, table_name: str
) -> None:
    # max_commit_seconds=0: every batch has overstayed by the time it would insert.
    async with ClickHouseEventStore(embedded_engine, table=table_name, max_commit_seconds=0.0) as store:
        with pytest.raises(LockTimeoutError):
            await store.append("late", [make_event(1)], 0)
        assert await store.stream_version("late") == 0
