"""Two applications on one vhost (exchanges A and B, same group and topic) never see each other's
events or retries; the move off the unscoped queue names of earlier versions (issue 10, item 9)."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import ChannelNotFoundEntity
from rabbitmq_support import SettingsFactory, until

from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings
from bento.adapters.rabbitmq._topology import dead_letter_queue, legacy_queue, retry_name
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import make_event

GROUP = "billing"
DOCS_PAGE = Path(__file__).resolve().parents[3] / "docs" / "rabbitmq.md"


class Broker:
    """A side connection to look at queues, and to delete everything a test declared."""

    def __init__(self, connection: aio_pika.abc.AbstractRobustConnection) -> None:
        self.connection = connection
        self.queues: set[str] = set()
        self.exchanges: set[str] = set()

    def track(self, settings: RabbitMQSettings, topic: str, delays: list[float], group: str = GROUP) -> None:
        self.exchanges.add(settings.exchange_name)
        legacy = legacy_queue(topic, group)
        dead = dead_letter_queue(settings, topic, group)
        self.queues |= {legacy, f"{legacy}.dlq", dead, dead.removesuffix(settings.dead_letter_suffix)}
        if not settings.legacy_queue_names:  # the legacy retry queues are shared: never delete them
            self.queues |= {retry_name(settings, d) for d in delays}
            self.exchanges |= {retry_name(settings, d) for d in delays}

    async def depth(self, queue: str) -> int | None:
        channel = await self.connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True, robust=False)
        except ChannelNotFoundEntity:
            return None
        count = declared.declaration_result.message_count
        await channel.close()
        return count

    async def purge(self, queue: str) -> None:
        channel = await self.connection.channel()
        await (await channel.declare_queue(queue, passive=True, robust=False)).purge()
        await channel.close()

    async def cleanup(self) -> None:
        channel = await self.connection.channel()
        for name in self.queues:
            await channel.queue_delete(name)
        for name in self.exchanges:
            await channel.exchange_delete(name)
        await channel.close()


@pytest.fixture
async def broker(rabbitmq_url: str) -> AsyncIterator[Broker]:
    connection = await aio_pika.connect_robust(rabbitmq_url)
    side = Broker(connection)
    try:
        yield side
    finally:
        await side.cleanup()
        await connection.close()


def _apps(
    factory: SettingsFactory, broker: Broker, topic: str, delays: list[float], **extra: object
) -> tuple[RabbitMQSettings, RabbitMQSettings]:
    run = uuid.uuid4().hex[:8]
    a = factory(exchange_name=f"appA.{run}", retry_delays=delays, **extra)
    b = factory(exchange_name=f"appB.{run}", retry_delays=delays, **extra)
    for settings in (a, b):
        broker.track(settings, topic, delays)
    return a, b


async def test_events_of_one_application_are_never_handled_by_another(
    rabbitmq_settings: SettingsFactory, broker: Broker
) -> None:
    topic = f"iso.{uuid.uuid4().hex[:10]}"
    settings_a, settings_b = _apps(rabbitmq_settings, broker, topic, [0.05, 0.1])
    in_a, in_b = Collector(), Collector()
    async with RabbitMQMessageBus(settings_a) as app_a, RabbitMQMessageBus(settings_b) as app_b:
        await app_a.subscribe(topic, in_a, group=GROUP)
        await app_b.subscribe(topic, in_b, group=GROUP)
        sent = [make_event(n) for n in range(20)]
        for event in sent:
            await app_a.publish(topic, event)
        assert await in_a.wait_for(20, timeout=10) == {e.message_id for e in sent}
        await asyncio.sleep(0.5)  # anything misrouted to B would have arrived by now
        assert in_b.ids() == set()


async def test_retries_of_one_application_never_reach_another(
    rabbitmq_settings: SettingsFactory, broker: Broker
) -> None:
    topic = f"iso.{uuid.uuid4().hex[:10]}"
    delay = 1.0 + (uuid.uuid4().int % 997) / 1000  # a delay no other test uses
    settings_a, settings_b = _apps(rabbitmq_settings, broker, topic, [delay], max_attempts=2)
    attempts: list[int] = []
    in_b = Collector()

    async def fails_once(event: DomainEvent, attempt: int) -> None:
        attempts.append(attempt)
        if attempt == 1:
            raise RuntimeError("transient")

    async with RabbitMQMessageBus(settings_a) as app_a, RabbitMQMessageBus(settings_b) as app_b:
        await app_a.subscribe(topic, Collector(fails_once), group=GROUP)
        await app_b.subscribe(topic, in_b, group=GROUP)
        await app_a.publish(topic, make_event(1))
        await until(lambda: app_a.metrics.retries == 1, within=5)
        # A's message waits out its delay in A's retry queue; B's retry queue never holds it,
        # so B's operator purging B's retry queue cannot lose A's retry.
        assert await broker.depth(retry_name(settings_a, delay)) == 1
        assert await broker.depth(retry_name(settings_b, delay)) == 0
        await broker.purge(retry_name(settings_b, delay))
        await until(lambda: attempts == [1, 2], within=10)
        assert in_b.ids() == set()
        assert app_b.metrics.messages_consumed == 0


async def test_legacy_names_are_kept_only_when_asked_and_said_loudly(
    rabbitmq_settings: SettingsFactory, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"iso.{uuid.uuid4().hex[:10]}"
    settings_a, _ = _apps(rabbitmq_settings, broker, topic, [0.05, 0.1], legacy_queue_names=True)
    with caplog.at_level(logging.WARNING):
        async with RabbitMQMessageBus(settings_a) as app_a:
            subscription = await app_a.subscribe(topic, Collector(), group=GROUP)
    assert subscription.queue_name == legacy_queue(topic, GROUP)
    assert any("legacy_queue_names=True" in r.getMessage() for r in caplog.records)


async def test_an_upgraded_group_stops_filling_its_legacy_queue_and_moves_its_messages(
    rabbitmq_settings: SettingsFactory, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"iso.{uuid.uuid4().hex[:10]}"
    old_a, old_b = _apps(rabbitmq_settings, broker, topic, [0.05, 0.1], legacy_queue_names=True)
    new_a = old_a.model_copy(update={"legacy_queue_names": False})
    broker.track(new_a, topic, [0.05, 0.1])
    legacy = legacy_queue(topic, GROUP)
    # Before the upgrade: A and B (same group and topic) share the legacy queue; nobody consumes now.
    async with RabbitMQMessageBus(old_a) as app_a, RabbitMQMessageBus(old_b) as app_b:
        await (await app_a.subscribe(topic, Collector(), group=GROUP)).cancel()
        await (await app_b.subscribe(topic, Collector(), group=GROUP)).cancel()
        waiting_a = [make_event(n) for n in range(3)]
        await app_a.publish_batch(topic, waiting_a)
        await app_b.publish_batch(topic, [make_event(n) for n in range(2)])
    assert await broker.depth(legacy) == 5

    received = Collector()
    with caplog.at_level(logging.WARNING):
        async with RabbitMQMessageBus(new_a) as app_a:
            await app_a.subscribe(topic, received, group=GROUP)
            assert any(legacy in r.getMessage() and "5 message(s)" in r.getMessage() for r in caplog.records)
            later = [make_event(n) for n in range(4)]
            await app_a.publish_batch(topic, later)
            assert await received.wait_for(4, timeout=10) == {e.message_id for e in later}
            assert await broker.depth(legacy) == 5  # unbound from A: no copies pile up there

            assert await app_a.move_legacy_messages(topic, group=GROUP) == 3
            expected = {e.message_id for e in [*waiting_a, *later]}
            await received.wait_until(lambda: received.ids() == expected, timeout=10)
            assert await broker.depth(legacy) == 2  # B's two stay for B
            assert await app_a.move_legacy_messages(topic, group=GROUP) == 0  # and are never taken later


async def test_the_migration_example_in_the_docs_runs_and_moves_the_legacy_messages(
    rabbitmq_settings: SettingsFactory, broker: Broker
) -> None:
    page = DOCS_PAGE.read_text()
    found = re.search(r"## Migrating from unscoped queue names.*?```python\n(.*?)```", page, re.S)
    assert found is not None
    run = uuid.uuid4().hex[:8]
    exchange, group = f"docs.{run}", f"billing{run}"
    code = found.group(1).replace("shop.events", exchange).replace('"billing"', f'"{group}"')
    old = rabbitmq_settings(exchange_name=exchange, legacy_queue_names=True)
    for settings in (old, old.model_copy(update={"legacy_queue_names": False})):
        broker.track(settings, "order.*", RabbitMQSettings().retry_delays, group)  # the example's delays
    async with RabbitMQMessageBus(old) as app:
        await (await app.subscribe("order.*", Collector(), group=group)).cancel()
        await app.publish_batch("order.placed", [make_event(1), make_event(2)])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    assert "moved 2 message(s)" in out.decode()
    assert await broker.depth(legacy_queue("order.*", group)) == 0
