"""The broker going away and coming back; and what only a real Kafka can show."""

from __future__ import annotations

import asyncio

import pytest
from kafka_support import kafka_settings, until

from bento.adapters.kafka import KafkaMessageBus
from bento.application.errors import BusClosedError, PublishError
from bento.testing.collector import Collector
from bento.testing.events import make_event
from servers.tansu import Tansu


async def test_a_restarted_broker_is_noticed_and_the_callbacks_run(unique_topic: str) -> None:
    """tansu forgets everything on restart: the bus re-creates its topics, runs the callbacks,
    and publishing and health work again."""
    with Tansu() as broker:
        called: list[str] = []

        async def warm_cache() -> None:
            called.append("async")

        async with KafkaMessageBus(kafka_settings(broker.url, connection_check_interval=0.2)) as bus:
            bus.register_reconnect_callback(warm_cache)
            bus.register_reconnect_callback(lambda: called.append("sync"))
            await bus.publish(unique_topic, make_event(1))
            await asyncio.to_thread(broker.stop)
            assert not (await bus.health_check()).healthy
            await until(lambda: bus.metrics.connection_errors > 0, timeout=10)
            await asyncio.to_thread(broker.start)
            await until(lambda: called == ["async", "sync"], timeout=20)
            assert bus.metrics.reconnects == 1
            await bus.publish(unique_topic, make_event(2))
            status = await bus.health_check()
            assert status.healthy, status.detail
            assert bus.metrics.health_check_status == "healthy"


async def test_publishing_to_a_missing_topic_is_refused_when_creation_is_off(kafka_url: str, unique_topic: str) -> None:
    async with KafkaMessageBus(kafka_settings(kafka_url, create_topics=False)) as bus:
        with pytest.raises(PublishError, match="does not exist"):
            await bus.publish(unique_topic, make_event(1))


async def test_topic_names_kafka_cannot_hold_are_refused(kafka_bus: KafkaMessageBus) -> None:
    with pytest.raises(PublishError, match="letters, digits"):
        await kafka_bus.publish("orders/placed", make_event(1))


async def test_unreachable_broker_is_a_typed_error_without_credentials() -> None:
    from bento.application.errors import BrokerUnavailableError
    from servers import free_port

    settings = kafka_settings(f"kafka://alice:s3cret@127.0.0.1:{free_port()}", publish_timeout=2.0)
    with pytest.raises(BrokerUnavailableError) as caught:
        await KafkaMessageBus(settings).start()
    assert "s3cret" not in str(caught.value) and "alice" not in str(caught.value)


async def test_a_new_member_resumes_from_the_committed_offsets(kafka_url: str, unique_topic: str) -> None:
    """What one member handled and committed is not handled again by the next one."""
    first, second = Collector(), Collector()
    sent = [make_event(n, key=f"k{n % 5}") for n in range(50)]
    async with KafkaMessageBus(kafka_settings(kafka_url)) as bus:
        await bus.subscribe(unique_topic, first, group="resume")
        await bus.publish_batch(unique_topic, sent[:30])
        await first.wait_for(30, timeout=30)
    async with KafkaMessageBus(kafka_settings(kafka_url)) as bus:
        await bus.publish_batch(unique_topic, sent[30:])
        await bus.subscribe(unique_topic, second, group="resume")
        await second.wait_for(20, timeout=30)
        await asyncio.sleep(0.5)
    assert second.ids() == {m.message_id for m in sent[30:]}
    with pytest.raises(BusClosedError):
        await bus.publish(unique_topic, sent[0])


@pytest.mark.real_kafka(lacks="the idempotent producer")
async def test_the_idempotent_producer_delivers_once(kafka_url: str, unique_topic: str) -> None:
    received = Collector()
    async with KafkaMessageBus(kafka_settings(kafka_url, idempotent=True)) as bus:
        await bus.subscribe(unique_topic, received, group="idempotent")
        sent = [make_event(n, key="k") for n in range(100)]
        await bus.publish_batch(unique_topic, sent)
        await received.wait_for(100, timeout=30)
        await asyncio.sleep(0.5)
    assert len(received.received) == 100
