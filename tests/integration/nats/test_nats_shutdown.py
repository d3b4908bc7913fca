"""Buffer bound and drain deadline of the NATS subscriber: what the settings say, measured."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from nats.aio.client import Client

from bento.adapters.nats import NatsMessageBus, NatsSettings
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import make_event

Settings = Callable[..., NatsSettings]


async def _ack_pending(settings: NatsSettings) -> int:
    """Messages the server delivered to the only consumer and has not seen acked: with a
    handler that never returns, exactly what the client holds."""
    nc = Client()
    await nc.connect(settings.server_urls()[0])
    try:
        js = nc.jetstream()
        (info,) = await js.consumers_info(settings.stream_name)
        return int(info.num_ack_pending)
    finally:
        await nc.close()


async def test_the_client_never_holds_more_than_fetch_batch(nats_settings: Settings) -> None:
    # fetch_timeout 0.5 s: the old puller dropped a request as "lost" 1.5 s after it went
    # out while its messages still sat in the client, and asked for another batch.
    settings = nats_settings(fetch_batch=10, fetch_timeout=0.5, drain_timeout=0.2)
    release = asyncio.Event()

    async def stuck(event: DomainEvent) -> None:
        await release.wait()

    async with NatsMessageBus(settings) as bus:
        await bus.subscribe("buffer.t", stuck, group="g")
        await bus.publish_batch("buffer.t", [make_event(n) for n in range(200)])
        highest = 0
        for _ in range(10):  # 5 s: three expiries and lost-request drops of the old puller
            await asyncio.sleep(0.5)
            highest = max(highest, await _ack_pending(settings))
        release.set()
    assert 0 < highest <= 10, f"the client held {highest} messages with fetch_batch=10"


async def test_close_keeps_to_the_drain_timeout_and_cuts_the_handler_off(nats_settings: Settings) -> None:
    settings = nats_settings(drain_timeout=1.0, fetch_timeout=2.0)
    started, finished = asyncio.Event(), asyncio.Event()
    cut_off: list[bool] = []

    async def slow(event: DomainEvent) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cut_off.append(True)
            raise
        finished.set()

    bus = NatsMessageBus(settings)
    await bus.start()
    await bus.subscribe("drain.t", slow, group="g")
    await bus.publish_batch("drain.t", [make_event(n) for n in range(5)])
    async with asyncio.timeout(10):
        await started.wait()
    began = time.monotonic()
    await bus.close()
    took = time.monotonic() - began
    assert took < 1.5, f"close() with drain_timeout=1 took {took:.2f} s"
    assert cut_off == [True] and not finished.is_set()
    # What the client held (the cut-off message and those behind it) was handed back:
    # the next member gets all of it within seconds, not after ack_wait (330 s here).
    survivor = Collector()
    async with NatsMessageBus(settings) as bus:
        await bus.subscribe("drain.t", survivor, group="g")
        assert len(await survivor.wait_for(5, timeout=8)) == 5
