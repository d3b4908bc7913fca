"""Fault tests against the real broker: dropped connections, poison and malformed messages."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from rabbitmq_support import ConnectionDropper, SettingsFactory, dead_letters_at_least, until

from bento.adapters.rabbitmq import RabbitMQMessageBus
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import make_event

pytestmark = pytest.mark.slow


def _topic() -> str:
    return f"fault.{uuid.uuid4().hex[:12]}"


async def test_dropped_connections_lose_nothing(rabbitmq_settings: SettingsFactory, dropper: ConnectionDropper) -> None:
    """10,000 messages published and consumed while the broker drops our connections twice."""
    total, topic = 10_000, _topic()
    deliveries: Counter[str] = Counter()

    async def handler(event: DomainEvent) -> None:
        deliveries[event.message_id] += 1

    reconnected: list[int] = []
    async with RabbitMQMessageBus(rabbitmq_settings(prefetch_count=200)) as bus:
        bus.register_reconnect_callback(lambda: reconnected.append(1))
        await bus.subscribe(topic, handler, group="g")
        sent = [make_event(n, key=f"k{n % 17}") for n in range(total)]

        async def publish() -> None:
            for start in range(0, total, 250):
                await bus.publish_batch(topic, sent[start : start + 250])

        async def drop_twice() -> None:
            for drops, threshold in enumerate((total // 5, total // 2), start=1):

                def reached(t: int = threshold) -> bool:
                    return len(deliveries) >= t

                await until(reached, within=60)
                assert await dropper.drop() >= 1
                # Two separate outages: the next drop waits until this one has been recovered from
                # (a drop during aio-pika's reconnect would merge them into one reconnect).
                await until(lambda n=drops: len(reconnected) >= n, within=60)

        await asyncio.gather(publish(), drop_twice())
        expected = {m.message_id for m in sent}
        await until(lambda: expected <= deliveries.keys(), within=90)
        assert deliveries.keys() == expected  # nothing lost, nothing foreign
        duplicates = sum(deliveries.values()) - total
        # Duplicates come only from redelivery of unacked messages and resent unconfirmed publishes,
        # both bounded per drop by prefetch and the publish window.
        assert duplicates <= 2 * (200 + bus.settings.publish_window)
        assert len(reconnected) >= 2
        assert bus.metrics.reconnects >= 2 and bus.metrics.connection_errors >= 2
        assert (await bus.health_check()).healthy


async def test_poison_message_reaches_the_dlq_after_max_attempts_while_good_ones_pass(
    rabbitmq_settings: SettingsFactory,
) -> None:
    topic, group = _topic(), "workers"
    poison = make_event(-1, blob="poison")

    def refuse_poison(event: DomainEvent, attempt: int) -> None:
        if event.message_id == poison.message_id:
            raise ValueError("poison pill")

    received = Collector(refuse_poison)
    async with RabbitMQMessageBus(rabbitmq_settings(max_attempts=4)) as bus:
        await bus.subscribe(topic, received, group=group)
        good = [make_event(n) for n in range(1000)]
        await bus.publish(topic, poison, headers={"x-case": "poison"})
        await bus.publish_batch(topic, good)
        assert await received.wait_for(1000, timeout=60) == {m.message_id for m in good}
        letters = await dead_letters_at_least(bus, topic, group, 1)
        assert len(letters) == 1
        letter = letters[0]
        assert (letter.message_id, letter.error_type, letter.attempts) == (poison.message_id, "ValueError", 4)
        assert "poison pill" in letter.error_message
        assert letter.headers["x-case"] == "poison"
        assert letter.topic == topic and letter.group == group
        await asyncio.sleep(0.5)
        assert received.attempts[poison.message_id] == 4  # never loops
        assert await bus.dead_letters(topic, group=group) == letters  # browsing removes nothing
        assert bus.metrics.consume_errors == 4 and bus.metrics.messages_consumed == 1000


async def test_malformed_bodies_are_dead_lettered_with_the_reason(rabbitmq_settings: SettingsFactory) -> None:
    topic = _topic()
    received = Collector()
    async with RabbitMQMessageBus(rabbitmq_settings()) as bus:
        await bus.subscribe(topic, received)  # broadcast subscriptions dead-letter too
        await bus.publish_raw(topic, b"\xff\xfe not even utf-8")
        await bus.publish_raw(topic, b'{"type":"fault.unknown","version":1,"message":{}}')
        good = make_event(1)
        await bus.publish(topic, good)
        await received.wait_for(1)
        letters = await dead_letters_at_least(bus, topic, None, 2)
        reasons = {letter.body: (letter.error_type, letter.attempts) for letter in letters}
        assert reasons[b"\xff\xfe not even utf-8"] == ("DeserializationError", 1)
        assert reasons[b'{"type":"fault.unknown","version":1,"message":{}}'] == ("UnknownMessageTypeError", 1)
        assert received.ids() == {good.message_id}
