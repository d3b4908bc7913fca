"""EventStoreContract on both ClickHouse engines: embedded chdb and a private server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

import pytest

from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.application.errors import BrokerUnavailableError, ConcurrencyError, LockTimeoutError
from bento.application.ports.event_store import EventStore
from bento.testing.contracts.event_store import EventStoreContract
from bento.testing.events import make_event


class TestClickHouseEventStoreEmbedded(EventStoreContract):
    @pytest.fixture
    async def event_store(self, embedded_engine: ClickHouseEngine, table_name: str) -> AsyncIterator[EventStore]:
        async with ClickHouseEventStore(embedded_engine, single_writer=True, table=table_name) as store:
            yield store


class TestClickHouseEventStoreServer(EventStoreContract):
    @pytest.fixture
    async def event_store(self, server_engine: ClickHouseEngine, table_name: str) -> AsyncIterator[EventStore]:
        async with ClickHouseEventStore(server_engine, single_writer=True, table=table_name) as store:
            yield store


@pytest.fixture
async def store(any_engine: ClickHouseEngine, table_name: str) -> AsyncIterator[ClickHouseEventStore]:
    async with ClickHouseEventStore(any_engine, single_writer=True, table=table_name) as store:
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
    async with ClickHouseEventStore(store.engine, single_writer=True, table=store.table_name) as again:
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
    async with ClickHouseEventStore(
        embedded_engine, single_writer=True, table=table_name, max_commit_seconds=0.0
    ) as store:
        with pytest.raises(LockTimeoutError):
            await store.append("late", [make_event(1)], 0)
        assert await store.stream_version("late") == 0


async def test_ids_and_date_are_computed_from_metadata_not_from_headers(store: ClickHouseEventStore) -> None:
    from datetime import UTC, datetime, timedelta

    from bento.application.ports.event_store import EventFilter

    # Headers carry the same key names: the ALIAS columns must read the top-level ones.
    decoy = {"tenant_id": "decoy", "correlation_id": "decoy", "causation_id": "decoy"}
    plain = make_event(1).with_metadata(headers=decoy)
    tagged = make_event(2).with_metadata(tenant_id='t "1"', correlation_id="corr", causation_id="cause", headers=decoy)
    await store.append("ids", [plain, tagged], 0)
    first, second = await store.read_stream("ids")
    assert (first.tenant_id, first.correlation_id, first.causation_id) == ("", plain.message_id, "")
    assert (second.tenant_id, second.correlation_id, second.causation_id) == ('t "1"', "corr", "cause")
    assert [e.version for e in await store.query(EventFilter(tenant_id='t "1"'))] == [2]
    assert await store.query(EventFilter(tenant_id="decoy")) == []
    now = datetime.now(UTC)
    in_range = await store.query(EventFilter(since=now - timedelta(minutes=5), until=now + timedelta(minutes=5)))
    assert [e.version for e in in_range] == [1, 2]
    assert await store.query(EventFilter(until=now - timedelta(days=40))) == []
    dates = await store.engine.execute(f"SELECT DISTINCT recorded_date FROM {store.table}")
    assert dates == [(first.recorded_at.date(),)]


async def test_new_tables_store_ten_columns(store: ClickHouseEventStore) -> None:
    from bento.adapters.clickhouse._event_store_schema import INSERT_COLUMNS, LEGACY_COLUMNS

    described = await store.engine.execute(f"DESCRIBE TABLE {store.table}")
    stored = [str(r[0]) for r in described if r[2] == ""]
    computed = [str(r[0]) for r in described if r[2] == "ALIAS"]
    assert stored == list(INSERT_COLUMNS) and sorted(computed) == sorted(LEGACY_COLUMNS)


LEGACY_DDL = """CREATE TABLE {table} (
    position UInt64, stream String, version UInt64, aggregate_type String, event_id String, event_type String,
    schema_version UInt32, data String, metadata String, tenant_id String, correlation_id String,
    causation_id String, recorded_at_us UInt64, recorded_date Date
) ENGINE = MergeTree PARTITION BY toYYYYMM(recorded_date) ORDER BY (stream, version)
SETTINGS index_granularity = 1024"""


async def test_a_table_with_the_earlier_14_stored_columns_keeps_working(
    any_engine: ClickHouseEngine, table_name: str
) -> None:
    from bento.application.ports.event_store import EventFilter

    await any_engine.execute(f"CREATE DATABASE IF NOT EXISTS {any_engine.database}")
    await any_engine.execute(LEGACY_DDL.format(table=any_engine.table(table_name)))
    async with ClickHouseEventStore(any_engine, single_writer=True, table=table_name) as store:
        event = make_event(1).with_metadata(tenant_id="old", causation_id="c0")
        assert await store.append("legacy", [event, make_event(2)], 0) == 2
        (first, second) = await store.read_stream("legacy")
        assert (first.tenant_id, first.causation_id, first.correlation_id) == ("old", "c0", event.message_id)
        assert second.tenant_id == ""
        assert [e.stream for e in await store.query(EventFilter(tenant_id="old"))] == ["legacy"]
        rows = await any_engine.execute(f"SELECT DISTINCT recorded_date FROM {store.table}")
        assert rows == [(first.recorded_at.date(),)]


class ReleaseFailsLock:
    """A StreamLock whose release fails (as a release on a closed Redis client does)."""

    @asynccontextmanager
    async def hold(self, streams: Collection[str], *, timeout: float = 10.0) -> AsyncIterator[None]:
        yield
        raise BrokerUnavailableError("Redis (stream lock)", "redis", "connection closed")


async def test_a_release_that_fails_after_the_commit_is_logged(
    embedded_engine: ClickHouseEngine, table_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with ClickHouseEventStore(embedded_engine, lock=ReleaseFailsLock(), table=table_name) as store:
        assert await store.append("s", [make_event(1)], 0) == 1  # the rows are written whatever the release does
        assert [e.version for e in await store.read_stream("s")] == [1]
    failed = [r for r in caplog.records if r.levelname == "ERROR" and "connection closed" in r.getMessage()]
    assert failed, "the failed release was swallowed"


async def test_a_large_commit_round_trips_every_character(embedded_engine: ClickHouseEngine, table_name: str) -> None:
    # 1,200 rows of ints and strings: chdb takes them through Python() rather than JSON text.
    tricky = 'quote " backslash \\ newline \n tab \t ünïcødé 🙂 {"json": [1]}'
    async with ClickHouseEventStore(embedded_engine, table=table_name) as store:
        events = [make_event(n, key=f"k{n}", blob=tricky) for n in range(1200)]
        assert await store.append(f"s {tricky}", events, 0) == 1200
        stored = await store.read_stream(f"s {tricky}")
    assert [s.version for s in stored] == list(range(1, 1201))
    assert [s.position for s in stored] == list(range(1, 1201))
    assert [s.event_id for s in stored] == [e.message_id for e in events]
    assert [s.decode(store.codec) for s in stored] == events
