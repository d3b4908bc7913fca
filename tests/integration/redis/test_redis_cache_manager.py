"""CacheManager and @cached on Redis, as two services would use them: two containers (standing
in for two processes) share one Redis cache, and an event one publishes on a real broker (a
Redis Streams bus, then RabbitMQ) drops the entries the other cached."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bento.infrastructure.container import BentoContainer
from bento.infrastructure.settings import load_settings
from bento.managers import runtime
from bento.managers.cache import CacheManager, cached
from bento.managers.clients import RedisClient
from bento.managers.events import Event, EventBusManager


class StockMoved(Event, name="it.cache.stock_moved"):
    sku: str


calls = 0


@cached(cache_name="stock", ttl=60, invalidate_on=[StockMoved])
async def stock_level(sku: str) -> int:
    global calls
    calls += 1
    return 100 + calls


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENTO_CONFIG", raising=False)


def _container(event: dict[str, object], cache: dict[str, object]) -> BentoContainer:
    container = BentoContainer()
    container.settings.override(load_settings(event={"default": event}, cache={"default": cache}))
    return container


@pytest.fixture(params=["redis", "rabbitmq"])
def event_settings(request: pytest.FixtureRequest, redis_url: str, key_prefix: str) -> dict[str, object]:
    if request.param == "redis":
        return {"backend": "redis", "url": redis_url, "key_prefix": f"{key_prefix}bus:"}
    from servers import require_tcp

    require_tcp("RabbitMQ", "127.0.0.1", 5672, "service rabbitmq-server start")
    return {
        "backend": "rabbitmq",
        "url": "amqp://guest:guest@127.0.0.1:5672/",
        "exchange_name": f"bento-cache-it-{uuid.uuid4().hex[:8]}",
    }


@pytest.fixture
async def two_services(
    event_settings: dict[str, object], redis_url: str, key_prefix: str
) -> AsyncIterator[tuple[BentoContainer, BentoContainer]]:
    cache = {"cache_type": "redis", "url": redis_url, "key_prefix": f"{key_prefix}cache:"}
    first, second = _container(event_settings, cache), _container(event_settings, cache)
    yield first, second
    for container in (first, second):
        runtime.use_container(container)
        await runtime.shutdown(container)
    runtime.reset_container()


async def test_an_event_from_another_service_invalidates_the_shared_cache(
    two_services: tuple[BentoContainer, BentoContainer],
) -> None:
    global calls
    calls = 0
    first, second = two_services

    runtime.use_container(first)
    assert await stock_level("sku-1") == 101
    assert await stock_level("sku-1") == 101
    assert CacheManager("stock").backend == "redis"

    runtime.use_container(second)  # the other service reads the entry the first one cached
    assert await stock_level("sku-1") == 101
    assert calls == 1
    publisher = await EventBusManager.get_instance().initialize()
    await publisher.publish(StockMoved(sku="sku-1"))

    key = stock_level.key_for("sku-1")
    for _ in range(250):
        if await CacheManager("stock").cache.get(key) is None:
            break
        await asyncio.sleep(0.02)
    assert await stock_level("sku-1") == 102
    runtime.use_container(first)
    assert await stock_level("sku-1") == 102  # the shared entry, not a stale local one
    assert calls == 2


async def test_a_shared_client_that_decodes_responses(redis_url: str, key_prefix: str) -> None:
    container = _container({"backend": "inprocess"}, {"url": redis_url})
    runtime.use_container(container)
    try:
        client = await RedisClient.get_instance().configure(decode_responses=True).initialize()
        cache = await CacheManager("shared").initialize("redis", key_prefix=f"{key_prefix}c:", client=client.connection)
        await cache.set_many({"a": {"x": 1}, "b": "ß"})
        assert await cache.get_many(["a", "b"]) == {"a": {"x": 1}, "b": "ß"}
        assert await cache.cache.delete_prefix("") == 2
    finally:
        await runtime.shutdown(container)
        runtime.reset_container()
