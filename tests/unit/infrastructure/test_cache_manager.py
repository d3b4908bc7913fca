"""CacheManager and @cached on the memory backend: named instances from CACHE__…, JSON values,
stable keys, single-flight, explicit and event-driven invalidation, clean-up at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from dependency_injector import providers
from pydantic import BaseModel

from bento.application.errors import CacheKeyError, CacheValueError, ConfigurationError
from bento.infrastructure.container import BentoContainer
from bento.infrastructure.settings import load_settings
from bento.managers import runtime
from bento.managers.cache import CacheManager, cached
from bento.managers.events import Event, EventBusManager


class PriceChanged(Event, name="unit.cache.price_changed"):
    symbol: str


class Quote(BaseModel):
    symbol: str
    price: float
    day: date


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENTO_CONFIG", raising=False)


@pytest.fixture
async def container() -> AsyncIterator[BentoContainer]:
    runtime.reset_container()
    built = BentoContainer()
    runtime.use_container(built)
    yield built
    await runtime.shutdown(built)
    runtime.reset_container()


async def test_the_seed_example_works_without_initialize(container: BentoContainer) -> None:
    cache_manager = CacheManager()
    await cache_manager.set("key", "value", ttl=3600)
    assert await cache_manager.get("key") == "value"
    assert cache_manager is CacheManager.get_instance() is CacheManager("DEFAULT")
    assert cache_manager.backend == "memory"


async def test_values_are_json_and_typed_on_request(container: BentoContainer) -> None:
    cache = CacheManager.get_instance("quotes")
    quote = Quote(symbol="ACME", price=1.5, day=date(2026, 1, 2))
    await cache.set_many({"q": quote, "n": [1, 2]})
    assert await cache.get("q") == {"symbol": "ACME", "price": 1.5, "day": "2026-01-02"}
    assert await cache.get("q", model=Quote) == quote
    assert await cache.get_many(["n", "x"]) == {"n": [1, 2]}
    assert await cache.get("x", "fallback") == "fallback"
    with pytest.raises(CacheValueError, match=r"JSON-able data"):
        await cache.set("bad", object())
    stats = await cache.stats()
    assert (stats.hits, stats.misses, stats.size) == (3, 2, 2)


async def test_named_instances_come_from_cache_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE__MAX_SIZE", "2")
    monkeypatch.setenv("CACHE__SESSION__CACHE_TYPE", "memory")
    monkeypatch.setenv("CACHE__SESSION__MAX_SIZE", "7")
    monkeypatch.setenv("CACHE__REMOTE__URL", "redis://cache.invalid:6379/2")
    settings = load_settings()
    assert settings.cache["remote"].cache_type == "redis"  # inferred from the URL scheme
    container = BentoContainer()
    container.settings.override(providers.Object(settings))
    runtime.use_container(container)
    try:
        assert (await CacheManager.get_instance("session").initialize()).cache.max_size == 7
        other = await CacheManager.get_instance("unnamed").initialize()
        assert other.cache.max_size == 2  # an instance the settings do not name takes the default's
        for n in range(3):
            await other.set(f"k{n}", n)
        assert (await other.stats()).evictions == 1
    finally:
        await runtime.shutdown(container)
        runtime.reset_container()


def test_an_unknown_cache_type_names_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE__API__CACHE_TYPE", "memcached")
    with pytest.raises(ConfigurationError, match=r"CACHE__API__CACHE_TYPE.*choose one of: memory, redis"):
        load_settings()


async def test_cached_keys_are_stable_and_results_typed(container: BentoContainer) -> None:
    calls: list[tuple[str, int]] = []

    @cached(cache_name="api_cache", ttl=300)
    async def expensive_api_call(symbol: str, days: int = 1) -> Quote:
        calls.append((symbol, days))
        return Quote(symbol=symbol, price=float(days), day=date(2026, 1, days))

    first = await expensive_api_call("ACME")
    assert await expensive_api_call("ACME", 1) == first
    assert await expensive_api_call(days=1, symbol="ACME") == first
    assert isinstance(await expensive_api_call("ACME"), Quote)
    assert calls == [("ACME", 1)]
    assert expensive_api_call.key_for("ACME") == expensive_api_call.key_for(symbol="ACME", days=1)
    assert expensive_api_call.key_for("ACME").startswith(f"{__name__}.")
    await expensive_api_call("ACME", 2)
    assert await expensive_api_call.invalidate("ACME") is True
    await expensive_api_call("ACME")
    assert calls == [("ACME", 1), ("ACME", 2), ("ACME", 1)]
    assert await expensive_api_call.invalidate_all() == 2


async def test_cached_with_a_key_function_and_methods(container: BentoContainer) -> None:
    class Prices:
        def __init__(self) -> None:
            self.calls = 0

        @cached(ttl=60, key=lambda self, symbol, **_: symbol.upper())
        async def price(self, symbol: str, *, source: object = None) -> float:
            self.calls += 1
            return 1.0

    prices = Prices()
    await prices.price("acme", source=object())
    await prices.price("ACME")
    assert prices.calls == 1
    assert Prices.price.key_for(prices, "acme").endswith(":ACME")

    @cached()
    async def by_object(thing: object) -> int:
        return 1

    with pytest.raises(CacheKeyError, match="key="):
        await by_object(object())


async def test_single_flight_and_failures_are_shared(container: BentoContainer) -> None:
    calls = 0

    @cached(cache_name="flaky")
    async def flaky(n: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise RuntimeError("backend down")

    results = await asyncio.gather(*(flaky(1) for _ in range(100)), return_exceptions=True)
    assert calls == 1 and all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        await flaky(1)  # failures are not cached
    assert calls == 2


async def test_published_events_invalidate_in_process(container: BentoContainer) -> None:
    calls = 0

    @cached(cache_name="prices", invalidate_on=[PriceChanged])
    async def price(symbol: str) -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await price("ACME") == 1
    assert await price("ACME") == 1
    await EventBusManager.get_instance().publish(PriceChanged(symbol="ACME"))
    for _ in range(200):
        if await CacheManager.get_instance("prices").cache.get(price.key_for("ACME")) is None:
            break
        await asyncio.sleep(0.01)
    assert await price("ACME") == 2


async def test_cleanup_at_container_shutdown(container: BentoContainer) -> None:
    cache = await CacheManager.get_instance("x").initialize()
    await cache.set("a", 1)
    assert (await cache.health()).healthy
    await runtime.shutdown(container)
    assert not cache.initialized
    assert not (await cache.health()).healthy


async def test_invalidation_that_cannot_be_bound_is_not_skipped_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE__ORDERS__EVENTS", "nowhere")  # an EVENT instance that does not exist
    container = BentoContainer()
    container.settings.override(providers.Object(load_settings()))
    runtime.use_container(container)

    @cached(cache_name="orders", invalidate_on=[PriceChanged])
    async def total(order_id: str) -> int:
        return 1

    try:
        for _ in range(2):  # every call says so, until the setting is fixed
            with pytest.raises(ConfigurationError, match="nowhere"):
                await total("o-1")
    finally:
        await runtime.shutdown(container)
        runtime.reset_container()
