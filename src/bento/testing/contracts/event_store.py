"""EventStoreContract: behaviour every EventStore adapter shows.

Subclass as `Test<Adapter>` with an `event_store` fixture yielding a fresh, empty
store (or one whose other content never shares this test's stream names: every test
uses unique streams, and `read_all` assertions only look at their own streams).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from bento.application.errors import ConcurrencyError, InvalidTextError, SerializationError
from bento.application.ports.event_store import ANY_VERSION, EventFilter, EventStore, StoredEvent
from bento.application.serialization import JsonCodec
from bento.testing.events import ContractEvent, OtherContractEvent, make_event


def _mine(events: list[StoredEvent], prefix: str) -> list[StoredEvent]:
    return [e for e in events if e.stream.startswith(prefix)]


async def read_everything(store: EventStore, after: int = 0, page: int = 500) -> list[StoredEvent]:
    """Page through `read_all` until it returns nothing."""
    out: list[StoredEvent] = []
    while True:
        batch = await store.read_all(after, page)
        if not batch:
            return out
        out.extend(batch)
        after = batch[-1].position


class EventStoreContract:
    """The EventStore promises, as tests. Subclasses provide the `event_store` fixture."""

    @pytest.fixture
    def prefix(self) -> str:
        return f"c{uuid.uuid4().hex[:10]}-"

    async def test_append_then_read_stream_round_trips(self, event_store: EventStore, prefix: str) -> None:
        stream = prefix + "order-1"
        events = [make_event(n, key="order-1", blob="é✓") for n in range(3)]
        version = await event_store.append(stream, events, 0, aggregate_type="Order")
        assert version == 3
        stored = await event_store.read_stream(stream)
        assert [s.version for s in stored] == [1, 2, 3]
        assert [s.event_id for s in stored] == [e.message_id for e in events]
        assert all(s.stream == stream and s.aggregate_type == "Order" for s in stored)
        assert all(s.event_type == "bento.testing.contract_event" and s.schema_version == 1 for s in stored)
        codec = JsonCodec()
        decoded = [codec.decode_stored(s.event_id, s.event_type, s.schema_version, s.data, s.metadata) for s in stored]
        assert decoded == events
        assert await event_store.stream_version(stream) == 3
        assert await event_store.read_stream(stream, from_version=2) == stored[2:]

    async def test_read_stream_events_decodes_like_read_stream(self, event_store: EventStore, prefix: str) -> None:
        stream = prefix + "decoded"
        codec = JsonCodec()
        events = [make_event(n, key="decoded", blob="é✓") for n in range(4)]
        other = OtherContractEvent(note='a "quoted" \\ note').with_metadata(tenant_id="t1", headers={"h": "v"})
        await event_store.append(stream, [*events, other], 0, aggregate_type="Order")
        assert await event_store.read_stream_events(stream, codec=codec) == [*events, other]
        assert await event_store.read_stream_events(stream, 3, codec=codec) == [events[3], other]
        assert await event_store.read_stream_events(prefix + "nothing", codec=codec) == []
        stored = await event_store.read_stream(stream)
        assert codec.decode_stored_many(stored) == [*events, other]

    async def test_recorded_at_keeps_microseconds_and_is_utc(self, event_store: EventStore, prefix: str) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        await event_store.append(prefix + "s", [make_event(1)], 0)
        (stored,) = await event_store.read_stream(prefix + "s")
        assert stored.recorded_at.tzinfo is not None
        assert before <= stored.recorded_at <= datetime.now(UTC) + timedelta(seconds=1)

    async def test_unknown_stream_is_empty_at_version_zero(self, event_store: EventStore, prefix: str) -> None:
        assert await event_store.read_stream(prefix + "nothing") == []
        assert await event_store.stream_version(prefix + "nothing") == 0

    async def test_wrong_expected_version_raises_and_writes_nothing(self, event_store: EventStore, prefix: str) -> None:
        stream = prefix + "s"
        await event_store.append(stream, [make_event(1)], 0)
        with pytest.raises(ConcurrencyError) as caught:
            await event_store.append(stream, [make_event(2), make_event(3)], 0)
        assert (caught.value.stream, caught.value.expected, caught.value.actual) == (stream, 0, 1)
        with pytest.raises(ConcurrencyError):
            await event_store.append(stream, [make_event(2)], 5)
        assert [s.version for s in await event_store.read_stream(stream)] == [1]

    async def test_any_version_skips_the_check(self, event_store: EventStore, prefix: str) -> None:
        stream = prefix + "s"
        await event_store.append(stream, [make_event(1)], 0)
        assert await event_store.append(stream, [make_event(2)], ANY_VERSION) == 2

    async def test_empty_append_is_a_no_op(self, event_store: EventStore, prefix: str) -> None:
        assert await event_store.append(prefix + "s", [], 0) == 0
        assert await event_store.read_stream(prefix + "s") == []

    async def test_a_known_version_is_never_stale(self, event_store: EventStore, prefix: str) -> None:
        # A store may decline to vouch (None); a number it gives is the stream's version now.
        stream = prefix + "known"
        assert await event_store.known_version(stream) in (None, 0)
        await event_store.append(stream, [make_event(1), make_event(2)], 0)
        assert await event_store.known_version(stream) in (None, 2)
        await asyncio.gather(*(event_store.append(stream, [make_event(n)], ANY_VERSION) for n in range(3, 8)))
        assert await event_store.known_version(stream) in (None, 7)
        with pytest.raises(ConcurrencyError):
            await event_store.append(stream, [make_event(9)], 2)
        assert await event_store.known_version(stream) in (None, 7)

    async def test_concurrent_appends_have_exactly_one_winner(self, event_store: EventStore, prefix: str) -> None:
        stream = prefix + "race"
        await event_store.append(stream, [make_event(0)], 0)
        attempts = [event_store.append(stream, [make_event(n), make_event(n + 100)], 1) for n in range(1, 11)]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, ConcurrencyError)]
        assert winners == [3] and len(losers) == 9
        stored = await event_store.read_stream(stream)
        assert [s.version for s in stored] == [1, 2, 3]

    async def test_many_writers_on_many_streams_lose_nothing(self, event_store: EventStore, prefix: str) -> None:
        async def writer(stream: str) -> int:
            conflicts = 0
            for n in range(20):
                while True:
                    version = await event_store.stream_version(stream)
                    try:
                        await event_store.append(stream, [make_event(n, key=stream)], version)
                        break
                    except ConcurrencyError:
                        conflicts += 1
            return conflicts

        streams = [f"{prefix}s{n}" for n in range(5)]
        await asyncio.gather(*(writer(s) for s in streams for _ in range(3)))
        for stream in streams:
            stored = await event_store.read_stream(stream)
            assert [s.version for s in stored] == list(range(1, 61))
            assert len({s.event_id for s in stored}) == 60

    async def test_read_all_is_one_global_order(self, event_store: EventStore, prefix: str) -> None:
        start = await event_store.last_position()
        for n in range(5):
            await event_store.append(f"{prefix}a", [make_event(n)], n)
            await event_store.append(f"{prefix}b", [make_event(100 + n)], n)
        everything = _mine(await read_everything(event_store, start), prefix)
        assert len(everything) == 10
        positions = [e.position for e in everything]
        assert positions == sorted(positions) and len(set(positions)) == 10
        assert [(e.stream, e.version) for e in everything] == [(f"{prefix}{s}", v) for v in range(1, 6) for s in "ab"]
        assert await event_store.last_position() >= positions[-1]

    async def test_read_all_pages_without_gaps_or_repeats(self, event_store: EventStore, prefix: str) -> None:
        start = await event_store.last_position()
        await event_store.append(prefix + "p", [make_event(n) for n in range(25)], 0)
        pages: list[StoredEvent] = []
        after = start
        while True:
            page = await event_store.read_all(after, 7)
            if not page:
                break
            assert len(page) <= 7
            pages.extend(page)
            after = page[-1].position
        mine = _mine(pages, prefix)
        assert [e.version for e in mine] == list(range(1, 26))

    async def test_positions_do_not_change_once_read(self, event_store: EventStore, prefix: str) -> None:
        start = await event_store.last_position()
        await event_store.append(prefix + "x", [make_event(1), make_event(2)], 0)
        first = _mine(await read_everything(event_store, start), prefix)
        await event_store.append(prefix + "y", [make_event(3)], 0)
        again = _mine(await read_everything(event_store, start), prefix)
        assert again[:2] == first

    async def test_concurrent_writers_never_let_a_checkpointed_reader_miss_events(
        self, event_store: EventStore, prefix: str
    ) -> None:
        start = await event_store.last_position()
        seen: list[StoredEvent] = []
        done = asyncio.Event()

        async def follower() -> None:
            after = start
            while True:
                # Look at `done` BEFORE reading: a read already in flight when the last append
                # committed may legitimately come back empty.
                writers_finished = done.is_set()
                batch = await event_store.read_all(after, 50)
                seen.extend(batch)
                if batch:
                    after = batch[-1].position
                elif writers_finished:
                    return
                else:
                    await asyncio.sleep(0.005)

        async def writer(n: int) -> None:
            for i in range(10):
                await event_store.append(f"{prefix}w{n}", [make_event(i)], i)

        reader = asyncio.create_task(follower())
        await asyncio.gather(*(writer(n) for n in range(8)))
        done.set()
        await reader
        mine = _mine(seen, prefix)
        assert len(mine) == 80
        assert len({(e.stream, e.version) for e in mine}) == 80

    async def test_query_by_type_aggregate_tenant_and_time(self, event_store: EventStore, prefix: str) -> None:
        start = await event_store.last_position()
        tenant = f"t-{prefix}"
        await event_store.append(
            prefix + "o1", [make_event(1).with_metadata(tenant_id=tenant)], 0, aggregate_type=prefix + "Order"
        )
        await event_store.append(prefix + "c1", [OtherContractEvent(note="n")], 0, aggregate_type=prefix + "Cart")
        by_type = await event_store.query(EventFilter(event_types=["bento.testing.other_event"], after_position=start))
        assert [e.stream for e in _mine(by_type, prefix)] == [prefix + "c1"]
        by_aggregate = await event_store.query(EventFilter(aggregate_type=prefix + "Order"))
        assert [e.stream for e in by_aggregate] == [prefix + "o1"]
        by_tenant = await event_store.query(EventFilter(tenant_id=tenant))
        assert [e.stream for e in by_tenant] == [prefix + "o1"] and by_tenant[0].tenant_id == tenant
        future = datetime.now(UTC) + timedelta(hours=1)
        assert await event_store.query(EventFilter(aggregate_type=prefix + "Order", since=future)) == []
        past = datetime.now(UTC) - timedelta(hours=1)
        assert len(await event_store.query(EventFilter(aggregate_type=prefix + "Cart", since=past, until=future))) == 1

    async def test_correlation_and_causation_are_kept(self, event_store: EventStore, prefix: str) -> None:
        event = ContractEvent(seq=1).with_metadata(correlation_id="corr-1", causation_id="cause-1")
        await event_store.append(prefix + "s", [event], 0)
        (stored,) = await event_store.read_stream(prefix + "s")
        assert (stored.correlation_id, stored.causation_id) == ("corr-1", "cause-1")

    async def test_an_unencodable_event_fails_the_whole_append(self, event_store: EventStore, prefix: str) -> None:
        stream = prefix + "atomic"
        batch = [make_event(0), make_event(1, blob="\ud800"), make_event(2)]  # a lone surrogate: no JSON
        with pytest.raises(SerializationError):
            await event_store.append(stream, batch, 0)
        assert await event_store.read_stream(stream) == []
        assert await event_store.stream_version(stream) == 0
        assert _mine(await read_everything(event_store), prefix) == []
        assert await event_store.append(stream, [make_event(3)], 0) == 1  # the stream is still new

    async def test_text_that_is_not_utf8_is_a_typed_error(self, event_store: EventStore, prefix: str) -> None:
        bad = prefix + "bad\udc80name"
        with pytest.raises(InvalidTextError):
            await event_store.append(bad, [make_event(0)], 0)
        with pytest.raises(InvalidTextError):
            await event_store.read_stream(bad)
        with pytest.raises(InvalidTextError):
            await event_store.stream_version(bad)
        for criteria in (
            EventFilter(tenant_id="t\ud800"),
            EventFilter(event_types=("ok", "x\udfff")),
            EventFilter(aggregate_type="\ud83d"),
        ):
            with pytest.raises(InvalidTextError):
                await event_store.query(criteria)
        assert await event_store.append(prefix + "good", [make_event(0)], 0) == 1  # the store still works
