"""RabbitMQ-specific behaviour beyond the contract: topology, multiple processes, ordering, settings."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from rabbitmq_support import ConnectionDropper, SettingsFactory, until

from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings
from bento.application.errors import BrokerUnavailableError, SubscribeError
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import ContractEvent, make_event


def _topic() -> str:
    return f"extra.{uuid.uuid4().hex[:12]}"


async def test_a_group_gets_one_queue_per_pattern(rabbitmq_settings: SettingsFactory) -> None:
    topic = _topic()
    exact, wildcard = Collector(), Collector()
    async with RabbitMQMessageBus(rabbitmq_settings()) as bus:
        one = await bus.subscribe(f"{topic}.a", exact, group="g")
        two = await bus.subscribe(f"{topic}.*", wildcard, group="g")
        assert one.queue_name != two.queue_name
        message = make_event(1)
        await bus.publish(f"{topic}.a", message)
        assert await exact.wait_for(1) == {message.message_id}
        assert await wildcard.wait_for(1) == {message.message_id}


async def test_two_processes_in_one_group_share_and_two_groups_each_get_all(
    rabbitmq_settings: SettingsFactory,
) -> None:
    topic = _topic()
    a1, a2, b = Collector(), Collector(), Collector()
    async with (
        RabbitMQMessageBus(rabbitmq_settings()) as first,
        RabbitMQMessageBus(rabbitmq_settings()) as second,
    ):
        await first.subscribe(topic, a1, group="a")
        await second.subscribe(topic, a2, group="a")
        await second.subscribe(topic, b, group="b")
        sent = [make_event(n) for n in range(400)]
        await first.publish_batch(topic, sent)
        expected = {m.message_id for m in sent}
        await a1.wait_until(lambda: a1.ids() | a2.ids() == expected, timeout=20)
        assert not a1.ids() & a2.ids()
        assert a1.ids() and a2.ids()  # both members worked
        assert await b.wait_for(400, timeout=20) == expected


async def test_ordered_group_fails_over_to_the_standby_member(rabbitmq_settings: SettingsFactory) -> None:
    topic = _topic()
    seen: list[int] = []

    async def record(event: DomainEvent, attempt: int) -> None:
        assert isinstance(event, ContractEvent)
        seen.append(event.seq)

    active, standby = Collector(record), Collector(record)
    async with (
        RabbitMQMessageBus(rabbitmq_settings()) as first,
        RabbitMQMessageBus(rabbitmq_settings()) as second,
    ):
        subscription = await first.subscribe(topic, active, group="o", ordered=True)
        await second.subscribe(topic, standby, group="o", ordered=True)
        await first.publish_batch(topic, [make_event(n, key="k") for n in range(100)])
        await active.wait_for(100)
        assert not standby.received  # single active consumer: the second member only stands by
        await subscription.cancel()
        await first.publish_batch(topic, [make_event(n, key="k") for n in range(100, 200)])
        await standby.wait_for(100)
        assert seen == list(range(200))
        with pytest.raises(SubscribeError):
            await first.subscribe(topic, Collector(), group="o", ordered=False)  # same queue, other args


async def test_reconnect_callbacks_metrics_and_health(
    rabbitmq_settings: SettingsFactory, dropper: ConnectionDropper
) -> None:
    topic = _topic()
    calls: list[str] = []

    async def async_callback() -> None:
        calls.append("async")

    def failing_callback() -> None:
        raise RuntimeError("re-initialisation failed")

    received, ordered, broadcast = Collector(), Collector(), Collector()
    async with RabbitMQMessageBus(rabbitmq_settings()) as bus:
        bus.register_reconnect_callback(failing_callback)  # logged and counted, never stops the others
        bus.register_reconnect_callback(async_callback)
        await bus.subscribe(topic, received, group="g")
        await bus.subscribe(topic, ordered, group="o", ordered=True)
        await bus.subscribe(topic, broadcast)
        await bus.publish(topic, make_event(1))
        for collector in (received, ordered, broadcast):
            await collector.wait_for(1)
        assert await dropper.drop() == 1
        await until(lambda: calls == ["async"], within=20)
        await bus.publish(topic, make_event(2))
        for collector in (received, ordered, broadcast):  # every kind of consumer resumed
            await collector.wait_for(2)
        status = await bus.health_check()
        assert status.healthy and status.latency_ms > 0
        m = bus.metrics
        assert (m.messages_published, m.messages_consumed, m.reconnects) == (2, 6, 1)
        assert m.connection_errors >= 2  # the drop and the failing callback
        assert m.health_check_status == "healthy" and m.last_health_check is not None
    status = await bus.health_check()
    assert not status.healthy and status.detail == "closed"


async def test_unreachable_broker_is_a_typed_error() -> None:
    settings = RabbitMQSettings(url="amqp://guest:guest@127.0.0.1:1/", connect_timeout=2)
    with pytest.raises(BrokerUnavailableError) as caught:
        await RabbitMQMessageBus(settings).start()
    assert "guest:guest" not in str(caught.value)


def test_settings_are_validated_and_secrets_hidden() -> None:
    with pytest.raises(ValueError, match="amqp"):
        RabbitMQSettings(url="http://example.com")
    with pytest.raises(ValueError):
        RabbitMQSettings(exchange_type="x-unknown")
    settings = RabbitMQSettings.model_validate(
        {"url": "amqps://u:p@broker:5671/vh", "exchange_name": "domain.events", "prefetch_count": 5}
    )
    assert settings.backend == "rabbitmq"
    assert (settings.exchange_name, settings.prefetch_count) == ("domain.events", 5)
    assert "p@" not in repr(settings)


async def test_close_drains_running_handlers(rabbitmq_settings: SettingsFactory) -> None:
    topic = _topic()
    started, finished = asyncio.Event(), []

    async def slow(event: DomainEvent) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.append(event.message_id)

    bus = RabbitMQMessageBus(rabbitmq_settings())
    await bus.start()
    await bus.subscribe(topic, slow, group="g")
    message = make_event(1)
    await bus.publish(topic, message)
    await asyncio.wait_for(started.wait(), 10)
    await bus.close()
    assert finished == [message.message_id]


async def test_out_of_order_completions_are_all_acked_exactly_once(rabbitmq_settings: SettingsFactory) -> None:
    """Coalesced acks with handlers finishing in random order: no channel error, nothing redelivered."""
    import random

    import aio_pika

    topic = _topic()

    async def jitter(event: DomainEvent, attempt: int) -> None:
        await asyncio.sleep(random.random() / 50)

    received = Collector(jitter)
    settings = rabbitmq_settings(prefetch_count=50)
    async with RabbitMQMessageBus(settings) as bus:
        subscription = await bus.subscribe(topic, received, group="g")
        sent = [make_event(n) for n in range(500)]
        await bus.publish_batch(topic, sent)
        assert await received.wait_for(500, timeout=30) == {m.message_id for m in sent}
        await asyncio.sleep(0.3)
        assert max(received.attempts.values()) == 1  # a refused ack would close the channel and redeliver
        queue_name = subscription.queue_name
    connection = await aio_pika.connect(settings.url.get_secret_value())
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        assert queue.declaration_result.message_count == 0
