"""InProcessMessageBus.close(): `drain_timeout` bounds the wait for handlers already running;
queued messages are not started (the in-process bus is not persistent)."""

from __future__ import annotations

import asyncio
import time

from bento.adapters.memory import InProcessMessageBus, InProcessSettings
from bento.domain.events import DomainEvent
from bento.testing.events import make_event


async def test_close_waits_for_running_handlers_only_not_the_queue() -> None:
    bus = InProcessMessageBus(InProcessSettings(drain_timeout=3.0, concurrency=4))
    handled: list[str] = []
    started = asyncio.Event()

    async def slow(event: DomainEvent) -> None:
        started.set()
        await asyncio.sleep(0.2)
        handled.append(event.message_id)

    await bus.subscribe("orders", slow, group="g")
    for n in range(200):
        await bus.publish("orders", make_event(n))
    await started.wait()
    began = time.monotonic()
    await bus.close()
    took = time.monotonic() - began
    # Before: close() went on handling the backlog until drain_timeout (3 s, ~56 handled).
    assert took < 1.0, took
    assert len(handled) == 4  # the four running finished; none was started after close()


async def test_drain_timeout_cancels_handlers_that_run_longer() -> None:
    bus = InProcessMessageBus(InProcessSettings(drain_timeout=0.2))
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def stuck(event: DomainEvent) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await bus.subscribe("orders", stuck, group="g")
    await bus.publish("orders", make_event(1))
    await started.wait()
    began = time.monotonic()
    await bus.close()
    assert 0.15 < time.monotonic() - began < 1.0
    assert cancelled.is_set()
