"""CacheContract: what every Cache adapter promises (see bento.application.ports.cache).

Subclasses provide a `cache` fixture (an open, empty cache whose `max_size` is between 3 and
100, with no default TTL) and a `message_bus` fixture (an open MessageBus the invalidation
test publishes on; a real broker in integration runs). `@cached` (CachedFunction) is run on
the cache too: single-flight and event invalidation are promised whatever the backend.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from bento.application.caching import CachedFunction, bind_invalidation
from bento.application.ports.cache import Cache
from bento.application.ports.message_bus import MessageBus
from bento.testing.events import ContractEvent, OtherContractEvent


async def _eventually(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await check():  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class CacheContract:
    async def test_set_get_delete(self, cache: Cache) -> None:
        assert await cache.get("missing") is None
        await cache.set("a", b'{"x":1}')
        assert await cache.get("a") == b'{"x":1}'
        await cache.set("a", b"2")
        assert await cache.get("a") == b"2"
        assert await cache.delete("a") is True
        assert await cache.delete("a") is False
        assert await cache.get("a") is None

    async def test_batches(self, cache: Cache) -> None:
        await cache.set_many({"k1": b"1", "k2": b"2"})
        assert await cache.get_many(["k1", "nope", "k2"]) == {"k1": b"1", "k2": b"2"}
        assert await cache.get_many([]) == {}

    async def test_entries_expire_after_their_ttl(self, cache: Cache) -> None:
        await cache.set("short", b"1", ttl=0.3)
        await cache.set_many({"long": b"2"}, ttl=30)
        await cache.set("forever", b"3")
        assert await cache.get("short") == b"1"
        await asyncio.sleep(0.5)
        assert await cache.get("short") is None
        assert await cache.get_many(["long", "forever"]) == {"long": b"2", "forever": b"3"}
        stats = await cache.stats()
        assert stats.size == 2 and stats.expired == 1

    async def test_a_ttl_of_zero_removes_the_entry(self, cache: Cache) -> None:
        await cache.set("k", b"old")
        await cache.set("k", b"new", ttl=0)
        assert await cache.get("k") is None
        await cache.set_many({"k": b"again"}, ttl=-1)
        assert await cache.get("k") is None
        assert (await cache.stats()).size == 0

    async def test_least_recently_used_is_evicted_first(self, cache: Cache) -> None:
        size = cache.max_size
        assert 3 <= size <= 100, "the fixture's cache must hold 3 to 100 entries"
        for n in range(size):
            await cache.set(f"k{n}", str(n).encode())
        assert await cache.get("k0") == b"0"  # k0 is now the most recently used; k1 the least
        await cache.set("new", b"x")
        assert await cache.get("k1") is None
        assert await cache.get("k0") == b"0"
        await cache.set("k2", b"rewritten")  # a write counts as a use too: k3 is next
        await cache.set("newer", b"y")
        assert await cache.get("k3") is None
        assert await cache.get("k2") == b"rewritten"
        stats = await cache.stats()
        assert stats.evictions == 2 and stats.size == size

    async def test_stats_count_hits_and_misses(self, cache: Cache) -> None:
        await cache.set("a", b"1")
        await cache.get("a")
        await cache.get("b")
        await cache.get_many(["a", "b", "c"])
        stats = await cache.stats()
        assert (stats.hits, stats.misses, stats.size) == (2, 3, 1)
        assert stats.hit_ratio == pytest.approx(0.4)
        assert stats.as_dict()["hits"] == 2

    async def test_delete_prefix_and_clear(self, cache: Cache) -> None:
        await cache.set_many({"f:1": b"1", "f:2": b"2", "g:1": b"3", "f*": b"4"})
        assert await cache.delete_prefix("f:") == 2
        assert await cache.get_many(["f:1", "f:2", "g:1", "f*"]) == {"g:1": b"3", "f*": b"4"}
        await cache.clear()
        assert await cache.get_many(["g:1", "f*"]) == {}
        assert (await cache.stats()).size == 0

    async def test_health_check(self, cache: Cache) -> None:
        assert (await cache.health_check()).healthy

    async def test_single_flight_calls_once_for_concurrent_misses(self, cache: Cache) -> None:
        calls = 0

        async def quote(symbol: str, *, currency: str = "EUR") -> dict[str, object]:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.2)
            return {"symbol": symbol, "price": 42.5, "currency": currency}

        async def resolve() -> Cache:
            return cache

        cached = CachedFunction(quote, resolve=resolve, ttl=60)
        results = await asyncio.gather(*(cached("ACME") for _ in range(100)))
        assert calls == 1
        assert all(r == {"symbol": "ACME", "price": 42.5, "currency": "EUR"} for r in results)
        assert await cached(symbol="ACME", currency="EUR") == results[0]  # same key, from the cache
        assert calls == 1
        await cached("ACME", currency="USD")
        assert calls == 2
        assert await cached.invalidate("ACME") is True
        await cached("ACME")
        assert calls == 3

    async def test_a_value_computed_across_an_invalidation_is_not_stored(self, cache: Cache) -> None:
        calls = 0
        release = asyncio.Event()

        async def balance(account: str) -> int:
            nonlocal calls
            calls += 1
            this_call = calls
            if this_call == 1:
                await release.wait()  # still computing when the invalidation arrives
            return this_call

        async def resolve() -> Cache:
            return cache

        cached = CachedFunction(balance, resolve=resolve, ttl=60)
        slow = asyncio.ensure_future(cached("acc"))
        await asyncio.sleep(0.1)
        await cached.invalidate_all()
        async with asyncio.timeout(5):  # a call after the invalidation does not join the old one
            assert await cached("acc") == 2
        release.set()
        assert await slow == 1  # its callers get their result ...
        assert await cached("acc") == 2  # ... but it never replaced the fresher entry
        assert calls == 2

    async def test_an_event_on_the_bus_invalidates(self, cache: Cache, message_bus: MessageBus) -> None:
        calls = 0
        run = uuid.uuid4().hex[:8]

        async def order_total(order_id: str) -> float:
            nonlocal calls
            calls += 1
            return 10.0 * calls

        order_total.__qualname__ = f"order_total_{run}"  # a namespace of its own per run

        async def resolve() -> Cache:
            return cache

        cached = CachedFunction(order_total, resolve=resolve, ttl=60, invalidate_on=[ContractEvent])
        subscriptions = await bind_invalidation(message_bus, cached)
        try:
            assert await cached("o-1") == 10.0
            assert await cached("o-1") == 10.0
            await message_bus.publish(OtherContractEvent.__wire_name__, OtherContractEvent(note=run))
            await asyncio.sleep(0.3)
            assert await cached("o-1") == 10.0  # an unrelated event changes nothing

            async def dropped() -> bool:
                return await cache.get(cached.key_for("o-1")) is None

            await message_bus.publish(ContractEvent.__wire_name__, ContractEvent(seq=1, key=run))
            await _eventually(dropped)
            assert await cached("o-1") == 20.0
        finally:
            for subscription in subscriptions:
                await subscription.cancel()
