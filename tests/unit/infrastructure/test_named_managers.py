"""Seed-style managers without network: lookup, caching in the container, configuration,
memory backends, health aggregation and cleanup at container shutdown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from dependency_injector import providers

from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.adapters.redis.settings import RedisSettings
from bento.application.errors import BusClosedError, ConfigurationError
from bento.application.ports.capabilities import HealthStatus
from bento.infrastructure.container import BentoContainer
from bento.infrastructure.settings import load_settings
from bento.managers import runtime
from bento.managers.channel import ChannelEvent, ChannelManager
from bento.managers.clients import RabbitMQClient, RedisClient
from bento.managers.events import Event, EventBus, EventBusManager
from bento.managers.health import collect_health
from bento.managers.mq import MQManager


class UnitOrderPlaced(Event):
    order_id: str

    @property
    def event_name(self) -> str:
        return "unit.managers.order_placed"


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


async def wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met in time")


async def test_instances_are_cached_per_name_in_the_container(container: BentoContainer) -> None:
    assert RedisClient.get_instance() is RedisClient.get_instance("default")
    assert RedisClient.get_instance("cache") is RedisClient.get_instance("CACHE")
    assert RedisClient.get_instance("cache") is not RedisClient.get_instance()
    assert EventBus.get_instance("domain") is EventBusManager.get_instance("domain")
    kinds = {(item.kind, item.name) for item in runtime.registry_of(container).items()}
    assert ("RedisClient", "cache") in kinds and ("EventBusManager", "domain") in kinds


async def test_a_new_container_has_its_own_instances(container: BentoContainer) -> None:
    first = ChannelManager.get_instance("sse")
    other = BentoContainer()
    runtime.use_container(other)
    assert ChannelManager.get_instance("sse") is not first


async def test_instances_created_before_the_app_set_its_container_move_to_it() -> None:
    runtime.reset_container()
    bus = EventBusManager.get_instance("early")  # e.g. a module calling get_instance at import time
    app_container = BentoContainer()
    runtime.use_container(app_container)
    assert EventBusManager.get_instance("early") is bus
    assert bus.settings is app_container.settings()
    runtime.reset_container()


async def test_use_before_initialize_names_the_fix(container: BentoContainer) -> None:
    with pytest.raises(runtime.NotInitializedError, match=r"RedisClient.get_instance\('cache'\)"):
        _ = RedisClient.get_instance("cache").connection
    with pytest.raises(runtime.NotInitializedError):
        await MQManager.get_instance().publish("q", {"a": 1})
    assert await ChannelManager.get_instance().health_check() is False


async def test_configure_is_chainable_and_validated(container: BentoContainer) -> None:
    bus = EventBusManager.get_instance()
    assert bus.configure(backend="redis", url="redis://localhost:6379/0", key_prefix="events:") is bus
    settings = bus.bus_settings()
    assert isinstance(settings, RedisSettings) and settings.key_prefix == "events:"
    bus.configure(backend="rabbitmq", url="amqp://guest:guest@localhost:5672/", exchange_name="app.events")
    rabbit = bus.bus_settings()
    assert isinstance(rabbit, RabbitMQSettings) and rabbit.exchange_name == "app.events"
    bus.configure(backend="rabbitmq", url="redis://wrong")
    with pytest.raises(ConfigurationError, match="url"):
        bus.bus_settings()


async def test_seed_000_environment_block(monkeypatch: pytest.MonkeyPatch) -> None:
    block = """
    CACHE__CACHE_TYPE=redis
    CACHE__URL=redis://localhost:6379/0
    CACHE__SESSION__CACHE_TYPE=redis
    CACHE__SESSION__URL=redis://localhost:6379/2
    CHANNEL__BACKEND=memory
    CHANNEL__DEFAULT__BACKEND=redis
    CHANNEL__DEFAULT__URL=redis://localhost:6379/3
    CHANNEL__DEFAULT__KEY_PREFIX=channel:
    CHANNEL__DEFAULT__TTL=86400
    MQ__BACKEND=redis
    MQ__DEFAULT__URL=redis://localhost:6379/4
    MQ__ORDERS__BACKEND=rabbitmq
    MQ__ORDERS__URL=amqp://guest:guest@localhost:5672/
    EVENT__BACKEND=memory
    EVENT__DEFAULT__BACKEND=redis
    EVENT__DEFAULT__URL=redis://localhost:6379/5
    EVENT__DOMAIN__BACKEND=rabbitmq
    EVENT__DOMAIN__URL=amqp://guest:guest@localhost:5672/
    EVENT__DOMAIN__EXCHANGE_NAME=domain.events
    """
    for line in block.split():
        key, value = line.split("=", 1)
        monkeypatch.setenv(key, value)
    runtime.reset_container()
    built = runtime.use_container(BentoContainer())
    try:
        default_bus = EventBusManager.get_instance().bus_settings()
        domain_bus = EventBusManager.get_instance("domain").bus_settings()
        assert isinstance(default_bus, RedisSettings) and default_bus.url.get_secret_value().endswith("/5")
        assert isinstance(domain_bus, RabbitMQSettings) and domain_bus.exchange_name == "domain.events"
        settings = built.settings()
        assert settings.channel["default"].backend == "redis"
        assert settings.channel["default"].url.get_secret_value().endswith("/3")
        assert settings.mq["default"].backend == "redis" and settings.mq["orders"].backend == "rabbitmq"
        assert settings.cache["session"].url.get_secret_value().endswith("/2")
        rabbit = RabbitMQClient.get_instance("orders").rabbitmq_settings()
        assert rabbit.url.get_secret_value().startswith("amqp")
        assert MQManager.get_instance("orders")._options()["backend"] == "rabbitmq"
    finally:
        runtime.reset_container()


async def test_memory_event_bus_delivers_to_every_subscriber(container: BentoContainer) -> None:
    bus = EventBusManager.get_instance()
    seen: list[tuple[str, str]] = []

    @bus.subscribe(UnitOrderPlaced)
    async def first(event: UnitOrderPlaced) -> None:
        seen.append(("first", event.order_id))

    await bus.configure(backend="memory").initialize()

    @bus.subscribe(UnitOrderPlaced)  # declared after initialize: bound before the next publish
    async def second(event: UnitOrderPlaced) -> None:
        seen.append(("second", event.order_id))

    await bus.publish(UnitOrderPlaced(order_id="1"), UnitOrderPlaced(order_id="2"))
    await wait_for(lambda: len(seen) == 4)
    assert sorted(seen) == [("first", "1"), ("first", "2"), ("second", "1"), ("second", "2")]
    assert await bus.health_check() is True


async def test_unconfigured_default_shares_the_containers_bus(container: BentoContainer) -> None:
    bus = await EventBusManager.get_instance().initialize()
    assert bus.bus is await container.message_bus()  # type: ignore[misc]
    report = await collect_health(container)
    assert [c.name for c in report.components] == ["event:default"]  # one bus, checked once


async def test_memory_channel_messages_are_json_objects_with_to_sse(container: BentoContainer) -> None:
    sse = await ChannelManager.get_instance("sse").initialize(backend="memory")
    async with sse.psubscribe("space:1:*") as subscription:
        await sse.publish("space:1:file_analyzed", {"n": 1}, event="file_analyzed")
        message = await subscription.receive(within=1.0)
    assert isinstance(message, ChannelEvent)
    assert json.loads(json.dumps(message))["data"] == {"n": 1}
    assert message.pattern == "space:1:*" and message.to_sse().endswith('data: {"n":1}\n\n')


async def test_health_report_marks_required_failures(container: BentoContainer) -> None:
    await ChannelManager.get_instance("sse").initialize(backend="memory")

    async def broken() -> HealthStatus:
        raise ConnectionError("refused")

    async def slow() -> bool:
        await asyncio.sleep(1)
        return True

    report = await collect_health(container, checks={"search": broken, "slow": slow}, timeout=0.05)
    body = report.as_dict()
    assert body["status"] == "unhealthy"
    search = body["components"]["search"]
    assert search["status"] == "down" and "refused" in search["detail"]
    assert body["components"]["slow"]["detail"].startswith("no answer")
    assert body["components"]["channel:sse"]["status"] == "up"
    relaxed = await collect_health(container, checks={"search": broken}, optional=["search"])
    assert relaxed.healthy


async def test_shutdown_resources_cleans_up_named_instances(container: BentoContainer) -> None:
    sse = await ChannelManager.get_instance("sse").initialize(backend="memory")
    bus = await EventBusManager.get_instance("audit").configure(backend="memory").initialize()
    subscription = sse.subscribe("a")
    await subscription.start()
    await container.shutdown_resources()  # type: ignore[misc]
    assert not sse.initialized and not bus.initialized
    with pytest.raises(BusClosedError):  # the channel closed: iteration ends, it never hangs
        await subscription.receive(within=1.0)
    await sse.initialize(backend="memory")  # usable again after cleanup
    assert sse.initialized


async def test_unknown_channel_backend_is_a_configuration_error(container: BentoContainer) -> None:
    with pytest.raises(ConfigurationError, match="CHANNEL__X__BACKEND"):
        await ChannelManager.get_instance("x").initialize(backend="kafka")


def test_container_override_of_settings_reaches_managers() -> None:
    runtime.reset_container()
    built = BentoContainer()
    built.settings.override(providers.Object(load_settings(service={"name": "svc-x"})))
    runtime.use_container(built)
    try:
        assert EventBusManager.get_instance().settings.service.name == "svc-x"
    finally:
        runtime.reset_container()
