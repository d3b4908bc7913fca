"""NATS-specific promises beyond the contract: durability of groups, de-duplication,
ordered retries, dead-letter headers, metrics, and typed errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from nats.aio.client import Client

from bento.adapters.nats import NatsMessageBus, NatsSettings
from bento.adapters.shared.delivery import ATTEMPTS_HEADER, ERROR_TYPE_HEADER, ORIGINAL_TOPIC_HEADER
from bento.application.errors import BrokerUnavailableError, BusClosedError, PublishError, SubscribeError
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import ContractEvent, make_event
from servers import free_port

Settings = Callable[..., NatsSettings]


async def test_a_group_gets_what_was_published_while_it_was_away(nats_settings: Settings) -> None:
    settings = nats_settings()
    first = Collector()
    async with NatsMessageBus(settings) as bus:
        await bus.subscribe("orders.placed", first, group="billing")
        before = make_event(1)
        await bus.publish("orders.placed", before)
        await first.wait_for(1)
    async with NatsMessageBus(settings) as publisher:  # nobody subscribed now
        while_away = [make_event(n) for n in range(2, 7)]
        await publisher.publish_batch("orders.placed", while_away)
    again = Collector()
    async with NatsMessageBus(settings) as bus:
        await bus.subscribe("orders.placed", again, group="billing")
        assert await again.wait_for(5) == {m.message_id for m in while_away}
        await asyncio.sleep(0.3)
        assert before.message_id not in again.ids()  # acked before: not redelivered


async def test_a_publisher_retry_is_stored_once_but_other_topics_get_their_copy(nats_settings: Settings) -> None:
    async with NatsMessageBus(nats_settings()) as bus:
        on_a, on_b = Collector(), Collector()
        await bus.subscribe("dedup.a", on_a, group="g")
        await bus.subscribe("dedup.b", on_b, group="g")
        event = make_event(1)
        await bus.publish("dedup.a", event)
        await bus.publish("dedup.a", event)  # a retry after a lost PubAck
        await bus.publish("dedup.b", event)
        await on_a.wait_for(1)
        await on_b.wait_for(1)
        await asyncio.sleep(0.5)
        assert on_a.attempts[event.message_id] == 1
        assert on_b.attempts[event.message_id] == 1


async def test_ordered_retry_holds_back_the_rest_of_its_key(nats_settings: Settings) -> None:
    handled: list[int] = []

    def fail_seq_3_once(event: DomainEvent, attempt: int) -> None:
        assert isinstance(event, ContractEvent)
        if event.seq == 3 and attempt == 1:
            raise RuntimeError("transient")
        handled.append(event.seq)

    async with NatsMessageBus(nats_settings()) as bus:
        received = Collector(fail_seq_3_once)
        await bus.subscribe("ordered.retry", received, group="g", ordered=True)
        await bus.publish_batch("ordered.retry", [make_event(n, key="one-key") for n in range(10)])
        await received.wait_for(10, timeout=15)
    assert handled == list(range(10))


async def test_dead_letters_keep_body_headers_and_error(nats_settings: Settings) -> None:
    async with NatsMessageBus(nats_settings(max_attempts=2)) as bus:

        def refuse(event: DomainEvent, attempt: int) -> None:
            raise ValueError("line one\nline two")

        await bus.subscribe("dlq.*", Collector(refuse), group="audit")
        poison = make_event(9, key="k9")
        await bus.publish("dlq.x", poison, headers={"x-trace": "abc"})
        letters = []
        for _ in range(150):
            if letters := await bus.dead_letters("dlq.*", group="audit"):
                break
            await asyncio.sleep(0.1)
        assert letters, "nothing was dead-lettered within 15 s"
        assert await bus.dead_letters("dlq.x", group="audit") == letters  # the concrete topic too
        assert await bus.dead_letters("dlq.x", group="other") == []
        letter = letters[0]
        assert (letter.topic, letter.group, letter.attempts, letter.error_type) == ("dlq.x", "audit", 2, "ValueError")
        assert "line one line two" in letter.error_message  # header-safe, still readable
        assert letter.headers["x-trace"] == "abc"
        assert letter.headers[ERROR_TYPE_HEADER] == "ValueError"
        assert letter.headers[ATTEMPTS_HEADER] == "2"
        assert letter.headers[ORIGINAL_TOPIC_HEADER] == "dlq.x"
        assert bus.codec.decode(letter.body).message_id == poison.message_id
        metrics = bus.metrics
        assert metrics.dead_lettered == 1
        assert metrics.consume_errors == 2


async def test_metrics_count_published_consumed_and_health(nats_settings: Settings) -> None:
    async with NatsMessageBus(nats_settings()) as bus:
        assert bus.metrics.health_check_status == "unknown"
        received = Collector()
        await bus.subscribe("metrics.t", received, group="g")
        await bus.publish_batch("metrics.t", [make_event(n) for n in range(4)])
        await bus.publish("metrics.t", make_event(5))
        await received.wait_for(5)
        await asyncio.sleep(0.1)
        status = await bus.health_check()
        metrics = bus.metrics
    assert status.healthy and status.component == "nats"
    assert (metrics.messages_published, metrics.messages_consumed) == (5, 5)
    assert (metrics.publish_errors, metrics.consume_errors, metrics.connection_errors) == (0, 0, 0)
    assert metrics.health_check_status == "healthy" and metrics.last_health_check is not None


async def test_cancelled_broadcast_subscriber_removes_its_consumer(nats_settings: Settings) -> None:
    settings = nats_settings()
    async with NatsMessageBus(settings) as bus:
        subscription = await bus.subscribe("eph.t", Collector())
        nc = Client()
        await nc.connect(settings.server_urls()[0])
        try:
            js = nc.jetstream()
            assert len(await js.consumers_info(settings.stream_name)) == 1
            await subscription.cancel()
            assert await js.consumers_info(settings.stream_name) == []
        finally:
            await nc.close()


async def test_errors_are_typed(nats_settings: Settings) -> None:
    settings = nats_settings()
    bus = NatsMessageBus(settings)
    with pytest.raises(BusClosedError):
        await bus.publish("t", make_event(1))
    async with bus:
        with pytest.raises(PublishError):
            await bus.publish("has space", make_event(1))
        with pytest.raises(PublishError):
            await bus.publish("wild.*", make_event(1))
        with pytest.raises(SubscribeError):
            await bus.subscribe("bad..topic", Collector())
    with pytest.raises(BusClosedError):
        await bus.start()
    unreachable = nats_settings(servers=[f"nats://127.0.0.1:{free_port()}"], connect_timeout=0.5)
    with pytest.raises(BrokerUnavailableError):
        async with NatsMessageBus(unreachable):
            pass
