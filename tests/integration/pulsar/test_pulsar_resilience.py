"""Broker restarts, dead-letter topics and shutdown, against a private broker per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pulsar
import pytest

from bento.adapters.pulsar import PulsarMessageBus, PulsarSettings
from bento.adapters.shared.delivery import ATTEMPTS_HEADER, ERROR_MESSAGE_HEADER, ERROR_TYPE_HEADER
from bento.application.errors import BusClosedError
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import make_event
from servers import require_tcp
from servers.pulsar_lite import PulsarLite


@pytest.fixture
def private_broker() -> Iterator[PulsarLite]:
    """A broker of this test's own, because the test stops and restarts it."""
    broker = PulsarLite()
    try:
        broker.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        broker.cleanup()
        require_tcp(f"pulsar-lite ({exc})", "127.0.0.1", broker.port, "pip install pulsar-lite")
        raise
    try:
        yield broker
    finally:
        broker.cleanup()


def _settings(url: str, **changes: object) -> PulsarSettings:
    return PulsarSettings.model_validate(
        {
            "service_url": url,
            "max_attempts": 3,
            "retry_delays": [0.05, 0.1],
            "drain_timeout": 5.0,
            "reconnect_check_interval": 0.05,
            **changes,
        }
    )


@pytest.fixture
async def bus(pulsar_url: str) -> AsyncIterator[PulsarMessageBus]:
    async with PulsarMessageBus(_settings(pulsar_url)) as bus:
        yield bus


async def test_broker_restart_mid_stream_loses_nothing(private_broker: PulsarLite) -> None:
    topic = f"restart.{uuid.uuid4().hex[:8]}"
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    async with PulsarMessageBus(_settings(private_broker.url, send_timeout_ms=60_000)) as bus:
        bus.register_reconnect_callback(on_reconnect)
        received = Collector()
        await bus.subscribe(topic, received, group="survivor")
        before = [make_event(n, key=f"k{n % 5}") for n in range(300)]
        after = [make_event(n, key=f"k{n % 5}") for n in range(300, 600)]
        await bus.publish_batch(topic, before[:150])

        async def publish_through_the_restart() -> None:
            for event in before[150:] + after:
                await bus.publish(topic, event)  # waits while the broker is down, then resends

        publisher = asyncio.create_task(publish_through_the_restart())
        await asyncio.sleep(0.2)
        assert not publisher.done(), "the restart must happen mid-stream"
        await asyncio.to_thread(private_broker.restart, crash=True)
        await publisher
        expected = {m.message_id for m in before + after}
        await received.wait_until(lambda: received.ids() >= expected, timeout=60)
        await asyncio.wait_for(reconnected.wait(), 10)
        assert bus.metrics.reconnects >= 1
        assert bus.metrics.connection_errors >= 1
        assert (await bus.health_check()).healthy


async def test_unacked_messages_come_back_after_a_restart(private_broker: PulsarLite) -> None:
    topic = f"restart.{uuid.uuid4().hex[:8]}"
    sent = [make_event(n) for n in range(50)]
    async with PulsarMessageBus(_settings(private_broker.url)) as bus:
        # Create the durable subscription, then close it: the backlog waits for the group.
        await (await bus.subscribe(topic, Collector(), group="later")).cancel()
        await bus.publish_batch(topic, sent)
    await asyncio.to_thread(private_broker.restart)
    async with PulsarMessageBus(_settings(private_broker.url)) as bus:
        received = Collector()
        await bus.subscribe(topic, received, group="later")
        assert await received.wait_for(50, timeout=20) == {m.message_id for m in sent}


async def test_health_check_reports_a_stopped_broker(private_broker: PulsarLite) -> None:
    async with PulsarMessageBus(_settings(private_broker.url, operation_timeout_seconds=2)) as bus:
        assert (await bus.health_check()).healthy
        await asyncio.to_thread(private_broker.stop)
        status = await bus.health_check()
        assert not status.healthy and "did not answer" in status.detail
        assert bus.metrics.health_check_status == "unhealthy"
        await asyncio.to_thread(private_broker.start)


async def test_poison_goes_to_the_dlq_topic_with_the_error_in_properties(
    bus: PulsarMessageBus, pulsar_url: str, unique_topic: str
) -> None:
    poison = make_event(-1, key="p", blob="poison")

    def refuse(event: DomainEvent, attempt: int) -> None:
        if event.message_id == poison.message_id:
            raise LookupError("no such order")

    received = Collector(refuse)
    await bus.subscribe(unique_topic, received, group="billing")
    good = [make_event(n, key=f"k{n % 3}") for n in range(100)]
    await bus.publish(unique_topic, poison, headers={"x-origin": "test"})
    await bus.publish_batch(unique_topic, good)
    await received.wait_for(100, timeout=20)
    for _ in range(100):
        letters = await bus.dead_letters(unique_topic, group="billing")
        if letters:
            break
        await asyncio.sleep(0.1)
    assert [letter.message_id for letter in letters] == [poison.message_id]
    assert received.attempts[poison.message_id] == 3
    assert all(received.attempts[m.message_id] == 1 for m in good)
    assert bus.metrics.dead_lettered == 1

    # The DLQ is a plain Pulsar topic named <topic>-<group>-DLQ; read it with the raw client.
    client = pulsar.Client(pulsar_url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
    try:
        reader = await asyncio.to_thread(
            client.create_reader, f"persistent://public/default/{unique_topic}-billing-DLQ", pulsar.MessageId.earliest
        )
        message = await asyncio.to_thread(reader.read_next, 5000)
        properties = message.properties()
        assert properties[ERROR_TYPE_HEADER] == "LookupError"
        assert "no such order" in properties[ERROR_MESSAGE_HEADER]
        assert properties[ATTEMPTS_HEADER] == "3"
        assert properties["x-origin"] == "test"
        assert message.partition_key() == "p"
    finally:
        await asyncio.to_thread(client.close)
    # Reading the dead letters consumed nothing.
    assert len(await bus.dead_letters(unique_topic, group="billing")) == 1


async def test_dead_letter_topic_template_is_configurable(pulsar_url: str, unique_topic: str) -> None:
    settings = _settings(pulsar_url, dead_letter_topic="dead.{group}.{topic}", max_attempts=1)
    async with PulsarMessageBus(settings) as bus:
        received = Collector(lambda event, attempt: (_ for _ in ()).throw(RuntimeError("always")))
        await bus.subscribe(unique_topic, received, group="g1")
        await bus.publish(unique_topic, make_event(1))
        for _ in range(100):
            letters = await bus.dead_letters(unique_topic, group="g1")
            if letters:
                break
            await asyncio.sleep(0.1)
        assert len(letters) == 1 and letters[0].attempts == 1 and letters[0].error_type == "RuntimeError"
        assert settings.dead_letter_topic_for(unique_topic, "g1").endswith(f"/dead.g1.{unique_topic}")


async def test_close_drains_in_flight_handlers_then_refuses_work(pulsar_url: str, unique_topic: str) -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(event: DomainEvent, attempt: int) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.set()

    bus = PulsarMessageBus(_settings(pulsar_url))
    await bus.start()
    await bus.subscribe(unique_topic, Collector(slow), group="drain")
    await bus.publish(unique_topic, make_event(1))
    await asyncio.wait_for(started.wait(), 10)
    await bus.close()
    assert finished.is_set()
    with pytest.raises(BusClosedError):
        await bus.subscribe(unique_topic, Collector(), group="late")
    await bus.close()


async def test_broadcast_subscription_is_removed_on_cancel(bus: PulsarMessageBus, unique_topic: str) -> None:
    first = Collector()
    subscription = await bus.subscribe(unique_topic, first)
    await bus.publish(unique_topic, make_event(1))
    await first.wait_for(1)
    await subscription.cancel()
    await subscription.cancel()  # idempotent
    # A new broadcast subscriber starts from "now": it does not inherit a backlog.
    second = Collector()
    await bus.subscribe(unique_topic, second)
    latest = make_event(2)
    await bus.publish(unique_topic, latest)
    assert await second.wait_for(1) == {latest.message_id}


async def test_acks_are_flushed_on_close(pulsar_url: str, unique_topic: str) -> None:
    sent = [make_event(n) for n in range(50)]
    async with PulsarMessageBus(_settings(pulsar_url)) as bus:
        received = Collector()
        await bus.subscribe(unique_topic, received, group="once")
        await bus.publish_batch(unique_topic, sent)
        await received.wait_for(50)
    async with PulsarMessageBus(_settings(pulsar_url)) as bus:
        again = Collector()
        await bus.subscribe(unique_topic, again, group="once")
        marker = make_event(99)
        await bus.publish(unique_topic, marker)
        await again.wait_for(1)
        await asyncio.sleep(0.3)
        assert again.ids() == {marker.message_id}, "acknowledged messages came back"


class _HoldsAnything(DomainEvent):
    __wire_name__ = "test.pulsar.holds_anything"
    value: object = None


async def test_a_batch_with_an_unencodable_message_sends_nothing(bus: PulsarMessageBus, unique_topic: str) -> None:
    from bento.application.errors import SerializationError

    seen = Collector()
    await bus.subscribe(unique_topic, seen, group="g")
    batch: list[DomainEvent] = [make_event(n) for n in range(600)]
    batch.insert(500, _HoldsAnything(value=object()))  # past the first encoding slices
    with pytest.raises(SerializationError):
        await bus.publish_batch(unique_topic, batch)
    marker = make_event(10_000)
    await bus.publish(unique_topic, marker)
    await seen.wait_for(1)
    await asyncio.sleep(0.3)  # anything sent before the marker would have arrived by now
    assert seen.ids() == {marker.message_id}
    assert bus.metrics.messages_published == 1
