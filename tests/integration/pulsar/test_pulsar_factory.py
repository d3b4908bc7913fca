"""Seed 002's public shape: keyword construction, MessageBusFactory and MessageBusType."""

from __future__ import annotations

import pytest

from bento.adapters.memory import InProcessMessageBus
from bento.adapters.pulsar import PulsarMessageBus, PulsarSettings
from bento.application.errors import (
    BrokerUnavailableError,
    BusClosedError,
    ConfigurationError,
    PublishError,
    SubscribeError,
)
from bento.infrastructure.message_bus_factory import MessageBusFactory, MessageBusType
from bento.testing.collector import Collector
from bento.testing.events import make_event
from servers import free_port


async def test_keyword_construction_like_seed_002(pulsar_url: str, unique_topic: str) -> None:
    async with PulsarMessageBus(service_url=pulsar_url, max_attempts=2) as bus:
        assert bus.settings.max_attempts == 2
        received = Collector()
        await bus.subscribe(unique_topic, received, group="seed")
        event = make_event(1)
        await bus.publish(unique_topic, event)
        assert await received.wait_for(1) == {event.message_id}


async def test_factory_creates_a_pulsar_bus(pulsar_url: str, unique_topic: str) -> None:
    bus = MessageBusFactory.create("pulsar", service_url=pulsar_url, namespace="default")
    assert isinstance(bus, PulsarMessageBus)
    async with bus:
        assert (await bus.health_check()).healthy
    enum_bus = MessageBusFactory.create(MessageBusType.PULSAR, PulsarSettings(service_url=pulsar_url))
    assert isinstance(enum_bus, PulsarMessageBus)


def test_factory_creates_inprocess_and_rejects_unknown_names() -> None:
    assert isinstance(MessageBusFactory.create(), InProcessMessageBus)
    assert isinstance(MessageBusFactory.create("inprocess", max_attempts=2), InProcessMessageBus)
    with pytest.raises(ConfigurationError, match="unknown message bus type 'activemq'"):
        MessageBusFactory.create("activemq")
    with pytest.raises(ConfigurationError, match="service_url"):
        MessageBusFactory.create("pulsar", service_url="http://not-pulsar")
    with pytest.raises(ConfigurationError, match="service_url"):
        PulsarMessageBus(service_url="amqp://wrong")
    assert set(MessageBusFactory.backends()) >= {m.value for m in MessageBusType}


def test_settings_map_topics_and_dead_letter_topics() -> None:
    settings = PulsarSettings(tenant="acme", namespace="orders")
    assert settings.full_topic("order.placed") == "persistent://acme/orders/order.placed"
    assert settings.full_topic("non-persistent://t/n/x") == "non-persistent://t/n/x"
    assert (
        settings.dead_letter_topic_for("order.placed", "billing") == "persistent://acme/orders/order.placed-billing-DLQ"
    )
    assert settings.dead_letter_topic_for("order.placed", None).endswith("order.placed-broadcast-DLQ")
    assert settings.dead_letter_topic_for("persistent://t/n/x", "g") == "persistent://t/n/x-g-DLQ"
    tls = PulsarSettings(service_url="pulsar+ssl://broker:6651", auth_token="secret-token")
    assert tls.uses_tls and "secret-token" not in repr(tls)


async def test_unreachable_broker_fails_fast_on_start() -> None:
    bus = PulsarMessageBus(service_url=f"pulsar://127.0.0.1:{free_port()}", operation_timeout_seconds=1)
    with pytest.raises(BrokerUnavailableError):
        await bus.start()
    with pytest.raises(BusClosedError, match="not started"):
        await bus.publish("t", make_event(1))
    await bus.close()


async def test_driver_errors_become_port_errors(pulsar_url: str) -> None:
    async with PulsarMessageBus(service_url=pulsar_url) as bus:
        with pytest.raises(PublishError, match="Pulsar refused"):
            await bus.publish("persistent://only-a-tenant", make_event(1))
        with pytest.raises(SubscribeError):
            await bus.subscribe("pattern.*", Collector(), group="g")  # pattern subscriptions are off
        assert bus.metrics.publish_errors == 1
