"""BacklogProbeContract: what every adapter offering BacklogProbe reports.

Subclass it as `Test<Adapter>Backlog` with a `bus` fixture yielding a started bus built with
`max_attempts` (the fixture, 2) and retry delays of at most 0.2 s, the same bus the
MessageBusContract runs. Each test gets its own topic and group.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from bento.application.ports.backlog import Backlog, backlog_probe
from bento.application.ports.message_bus import MessageBus
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import make_event


class BacklogProbeContract:
    """The BacklogProbe promises, as tests. Subclasses provide the `bus` fixture."""

    @pytest.fixture
    def max_attempts(self) -> int:
        return 2

    @pytest.fixture
    def topic(self) -> str:
        return f"backlog.{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def group(self, topic: str) -> str:
        return f"g-{topic.rsplit('.', 1)[-1]}"

    async def test_a_group_never_subscribed_has_no_backlog_figure(self, bus: MessageBus, topic: str) -> None:
        backlog = await _probe(bus, topic, "never-subscribed")
        assert backlog.waiting is None  # unknown, not a reassuring zero
        assert backlog.topic == topic and backlog.group == "never-subscribed"

    async def test_waiting_counts_what_the_group_was_not_handed(self, bus: MessageBus, topic: str, group: str) -> None:
        received = Collector()
        subscription = await bus.subscribe(topic, received, group=group)
        await bus.publish(topic, make_event(0))
        await received.wait_for(1, timeout=20)
        await _until(bus, topic, group, lambda b: b.waiting == 0)
        if bus.capabilities.persistent:
            # The group outlives its consumers: what is published meanwhile waits for it.
            await subscription.cancel()
            for n in range(1, 8):
                await bus.publish(topic, make_event(n))
            await _until(bus, topic, group, lambda b: b.waiting == 7)
            subscription = await bus.subscribe(topic, received, group=group)
        else:
            # Nothing outlives the process: hold the handler, so the rest queue up behind it.
            gate = asyncio.Event()

            async def held(event: DomainEvent, attempt: int) -> None:
                await gate.wait()

            blocked = Collector(held)
            await subscription.cancel()
            subscription = await bus.subscribe(topic, blocked, group=group)
            for n in range(1, 8):
                await bus.publish(topic, make_event(n))
            backlog = await _until(bus, topic, group, lambda b: (b.waiting or 0) >= 1)
            assert backlog.waiting is not None and backlog.waiting <= 7
            gate.set()
            received = blocked  # it gets the seven; the first went to the earlier subscriber
        await received.wait_for(8 if bus.capabilities.persistent else 7, timeout=20)
        await _until(bus, topic, group, lambda b: b.waiting == 0)
        await subscription.cancel()

    async def test_dead_letters_counts_the_subscriptions_dead_letter_queue(
        self, bus: MessageBus, topic: str, group: str
    ) -> None:
        if not bus.capabilities.dead_letter:
            pytest.skip("adapter has no dead-letter path")
        poison: set[str] = set()

        def refuse(event: DomainEvent, attempt: int) -> None:
            if event.message_id in poison:
                raise ValueError("poison")

        received = Collector(refuse)
        subscription = await bus.subscribe(topic, received, group=group)
        for count in (1, 2):  # one at a time: each dead letter is counted as it arrives
            letter = make_event(-count)
            poison.add(letter.message_id)
            await bus.publish(topic, letter)
            await _until(bus, topic, group, lambda b, count=count: b.dead_letters == count)  # type: ignore[misc]
        await bus.publish(topic, make_event(1))
        await received.wait_for(1, timeout=20)
        backlog = await _until(bus, topic, group, lambda b: b.waiting == 0)
        assert backlog.dead_letters == len(await bus.dead_letters(topic, group=group)) == 2
        await subscription.cancel()


async def _probe(bus: MessageBus, topic: str, group: str) -> Backlog:
    probe = backlog_probe(bus)
    assert probe is not None, f"{type(bus).__name__} does not offer BacklogProbe"
    return await probe.backlog(topic, group=group)


async def _until(
    bus: MessageBus, topic: str, group: str, condition: Callable[[Backlog], bool], timeout: float = 20.0
) -> Backlog:
    backlog = await _probe(bus, topic, group)
    try:
        async with asyncio.timeout(timeout):
            while not condition(backlog):
                await asyncio.sleep(0.1)
                backlog = await _probe(bus, topic, group)
    except TimeoutError:
        raise AssertionError(f"backlog condition not met within {timeout}s; last: {backlog}") from None
    return backlog
