"""Nothing the stream accepts disappears: a message stored on a subject outside the
layout (published by another client, without the partition token) is dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nats.aio.client import Client

from bento.adapters.nats import NatsMessageBus, NatsSettings
from bento.adapters.nats._strays import ORIGINAL_SUBJECT_HEADER, UNROUTED_GROUP
from bento.adapters.shared.delivery import ERROR_TYPE_HEADER, ORIGINAL_TOPIC_HEADER
from bento.application.ports.message_bus import DeadLetter
from bento.testing.collector import Collector
from bento.testing.events import make_event

Settings = Callable[..., NatsSettings]


async def _letters(bus: NatsMessageBus, topic: str) -> list[DeadLetter]:
    for _ in range(100):
        if letters := await bus.dead_letters(topic, group=UNROUTED_GROUP):
            return letters
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing on {topic!r} was dead-lettered within 10 s")


async def test_a_raw_publish_outside_the_layout_is_dead_lettered_not_lost(nats_settings: Settings) -> None:
    settings = nats_settings(partitions=8, unrouted_sweep_interval=0.3)
    prefix = settings.subject_prefix
    async with NatsMessageBus(settings) as bus:
        received = Collector()
        await bus.subscribe("orders.placed", received, group="g")
        nc = Client()
        await nc.connect(settings.server_urls()[0])
        try:
            js = nc.jetstream()
            no_partition = bus.codec.encode(make_event(1))
            beyond = bus.codec.encode(make_event(2))
            routed = make_event(3)
            # JetStream accepts all three: the stream captures `{prefix}.>`.
            await js.publish(f"{prefix}.orders.placed", no_partition, headers={"x-source": "raw"})
            await js.publish(f"{prefix}.p99.orders.cancelled", beyond)  # no partition 99 with 8
            await js.publish(f"{prefix}.p3.orders.placed", bus.codec.encode(routed))
            assert await received.wait_for(1) == {routed.message_id}

            (letter,) = await _letters(bus, "orders.placed")
            assert letter.body == no_partition and letter.headers["x-source"] == "raw"
            assert letter.headers[ERROR_TYPE_HEADER] == "UnroutableSubject"
            assert letter.headers[ORIGINAL_SUBJECT_HEADER] == f"{prefix}.orders.placed"
            assert letter.headers[ORIGINAL_TOPIC_HEADER] == "orders.placed"
            (letter,) = await _letters(bus, "p99.orders.cancelled")
            assert letter.body == beyond

            # Moved, not copied: the stream holds only the routed message now.
            info = await js.stream_info(settings.stream_name, subjects_filter=f"{prefix}.>")
            assert info.state.subjects == {f"{prefix}.p3.orders.placed": 1}
            await asyncio.sleep(0.7)  # later sweeps find nothing more to move
            assert len(await bus.dead_letters("orders.placed", group=UNROUTED_GROUP)) == 1
        finally:
            await nc.close()
        assert received.ids() == {routed.message_id}
