"""DeadLetterContract: list, requeue and purge a subscription's dead letters (part of MessageBusContract).

The story each test tells is the operator's: poison messages are dead-lettered, listed with their
error, the handler is fixed, the letters are requeued and handled exactly once, in their original
order per key, and only by the group that gave up on them; purge empties the queue. Gated on
`capabilities.dead_letter`.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bento.application.ports.message_bus import DeadLetter, DeadLetterSelection, MessageBus
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import ContractEvent, VersionedContractEvent, make_event


class Breakable:
    """A handler behaviour that refuses events while `broken` (the bug), then accepts them."""

    def __init__(self, refuse: Callable[[DomainEvent], bool] = lambda event: True) -> None:
        self.broken = True
        self._refuse = refuse

    def __call__(self, event: DomainEvent, attempt: int) -> None:
        if self.broken and self._refuse(event):
            if isinstance(event, ContractEvent) and event.blob == "type":
                raise TypeError(f"bad type in {event.seq}")
            raise ValueError(f"cannot handle {event.message_id}")


class DeadLetterContract:
    """Dead letters listed, requeued and purged. Subclasses provide `bus`, `topic` and `group`."""

    async def test_dead_letter_lists_error_attempts_key_and_failure_times(
        self, bus: MessageBus, topic: str, group: str, max_attempts: int
    ) -> None:
        _needs_dead_letters(bus)
        behaviour = Breakable()
        await bus.subscribe(topic, Collector(behaviour), group=group)
        before = datetime.now(UTC) - timedelta(seconds=1)
        poison = make_event(1, key="order-7")
        await bus.publish(topic, poison)
        letters = await wait_for_dead_letters(bus, topic, group, {poison.message_id})
        dead = next(d for d in letters if d.message_id == poison.message_id)
        assert (dead.topic, dead.group, dead.message_id) == (topic, group, poison.message_id)
        assert dead.letter_id and dead.key == "order-7"
        assert (dead.error_type, dead.attempts) == ("ValueError", max_attempts)
        assert dead.last_failed_at is not None and before <= dead.last_failed_at <= datetime.now(UTC)
        # The first of the failed attempts, known in the process that saw it (this one).
        assert dead.first_failed_at is not None and before <= dead.first_failed_at < dead.last_failed_at

    async def test_requeued_letters_are_handled_once_in_key_order_by_their_group_only(
        self, bus: MessageBus, topic: str, group: str
    ) -> None:
        _needs_dead_letters(bus)
        ordered = bus.capabilities.ordered_per_key
        behaviour = Breakable()
        fixed = Collector(behaviour)
        other = Collector()
        await bus.subscribe(topic, fixed, group=group, ordered=ordered)
        await bus.subscribe(topic, other, group=f"{group}-other")
        sent = [make_event(n, key=f"key-{n % 2}") for n in range(8)]
        await bus.publish_batch(topic, sent)
        assert await other.wait_for(8) == {m.message_id for m in sent}
        letters = await wait_for_dead_letters(bus, topic, group, {m.message_id for m in sent})
        assert {d.message_id for d in letters} == {m.message_id for m in sent}
        behaviour.broken = False
        requeued = await bus.requeue_dead_letters(topic, group=group)
        assert sorted(d.message_id or "" for d in requeued) == sorted(m.message_id for m in sent)
        await fixed.wait_for(8, timeout=20)
        await asyncio.sleep(0.5)
        handled = [e.message_id for e in fixed.received]
        assert sorted(handled) == sorted(m.message_id for m in sent), "each letter handled exactly once"
        if ordered:
            by_key: dict[str, list[int]] = defaultdict(list)
            for event in fixed.received:
                assert isinstance(event, ContractEvent)
                by_key[event.key].append(event.seq)
            for key, seqs in by_key.items():
                assert seqs == [m.seq for m in sent if m.key == key], f"order broken for {key}"
        assert len(other.received) == 8, "the other group never sees a requeued letter"
        assert await bus.dead_letters(topic, group=group) == []

    async def test_requeue_by_id_and_by_error_type_leaves_the_rest(
        self, bus: MessageBus, topic: str, group: str
    ) -> None:
        _needs_dead_letters(bus)
        behaviour = Breakable()
        received = Collector(behaviour)
        await bus.subscribe(topic, received, group=group)
        values = [make_event(n) for n in range(3)]
        types = [make_event(10 + n, blob="type") for n in range(2)]
        await bus.publish_batch(topic, [*values, *types])
        letters = await wait_for_dead_letters(bus, topic, group, {m.message_id for m in [*values, *types]})
        behaviour.broken = False
        by_id = next(d for d in letters if d.message_id == values[0].message_id)
        [one] = await bus.requeue_dead_letters(topic, group=group, selection=DeadLetterSelection(ids=[by_id.letter_id]))
        assert one.message_id == values[0].message_id
        await received.wait_for(1)
        of_type = await bus.requeue_dead_letters(
            topic, group=group, selection=DeadLetterSelection(error_type="TypeError")
        )
        assert {d.message_id for d in of_type} == {m.message_id for m in types}
        await received.wait_for(3)
        left = await bus.dead_letters(topic, group=group)
        # At-least-once: a broker may dead-letter a message twice; the rest is still all there.
        assert {d.message_id for d in left} >= {m.message_id for m in values[1:]}
        assert by_id.letter_id not in {d.letter_id for d in left}
        assert all(d.error_type == "ValueError" for d in left)
        assert received.ids() >= {values[0].message_id, *(m.message_id for m in types)}

    async def test_a_pattern_subscriptions_letters_go_back_to_their_own_topics(
        self, bus: MessageBus, topic: str, group: str
    ) -> None:
        _needs_dead_letters(bus)
        if not bus.capabilities.pattern_subscriptions:
            pytest.skip("adapter does not offer pattern subscriptions")
        behaviour = Breakable()
        received = Collector(behaviour)
        await bus.subscribe(f"{topic}.*", received, group=group)
        a, b = make_event(1), make_event(2)
        await bus.publish(f"{topic}.a", a)
        await bus.publish(f"{topic}.b", b)
        letters = await wait_for_dead_letters(bus, f"{topic}.*", group, {a.message_id, b.message_id})
        assert {(d.topic, d.message_id) for d in letters} == {
            (f"{topic}.a", a.message_id),
            (f"{topic}.b", b.message_id),
        }
        behaviour.broken = False
        assert len(await bus.requeue_dead_letters(f"{topic}.*", group=group)) == 2
        assert await received.wait_for(2) == {a.message_id, b.message_id}
        await asyncio.sleep(0.3)
        assert len(received.received) == 2
        assert await bus.dead_letters(f"{topic}.*", group=group) == []

    async def test_a_broadcast_subscriptions_letters_go_back_to_broadcast_subscribers_only(
        self, bus: MessageBus, topic: str, group: str
    ) -> None:
        _needs_dead_letters(bus)
        if not bus.capabilities.broadcast:
            pytest.skip("adapter does not offer broadcast subscriptions")
        behaviour = Breakable()
        listener, grouped = Collector(behaviour), Collector()
        await bus.subscribe(topic, listener)
        await bus.subscribe(topic, grouped, group=group)
        await asyncio.sleep(0.2)  # a broadcast subscriber reads from the end: let it attach
        sent = make_event(1)
        await bus.publish(topic, sent)
        await grouped.wait_for(1)
        [dead, *_] = await wait_for_dead_letters(bus, topic, None, {sent.message_id})
        assert (dead.group, dead.message_id) == (None, sent.message_id)
        behaviour.broken = False
        assert len(await bus.requeue_dead_letters(topic, group=None)) == 1
        assert await listener.wait_for(1) == {sent.message_id}
        await asyncio.sleep(0.5)
        assert len(listener.received) == 1 and len(grouped.received) == 1
        assert await bus.dead_letters(topic, group=None) == []

    async def test_requeue_at_a_rate_limit(self, bus: MessageBus, topic: str, group: str) -> None:
        _needs_dead_letters(bus)
        behaviour = Breakable()
        received = Collector(behaviour)
        await bus.subscribe(topic, received, group=group)
        sent = [make_event(n) for n in range(5)]
        await bus.publish_batch(topic, sent)
        await wait_for_dead_letters(bus, topic, group, {m.message_id for m in sent})
        behaviour.broken = False
        started = time.monotonic()
        requeued = await bus.requeue_dead_letters(topic, group=group, rate=10.0)
        assert len(requeued) >= 5  # a letter dead-lettered twice (at-least-once) goes twice
        assert time.monotonic() - started >= 0.38  # 5 letters at 10/s: four gaps of 0.1 s
        await received.wait_for(5)

    async def test_requeue_upcasts_a_letter_stored_at_an_old_schema_version(
        self, bus: MessageBus, topic: str, group: str
    ) -> None:
        """Version 1 arrives before its upcaster is deployed and is dead-lettered; once the
        upcaster is registered, the requeued letter reaches the handler as version 2."""
        _needs_dead_letters(bus)
        codec: Any = getattr(bus, "codec", None)
        if codec is None:
            pytest.skip("the bus does not expose the codec its upcasters are registered on")
        received = Collector()
        await bus.subscribe(topic, received, group=group)
        current = VersionedContractEvent(amount_cents=250)
        old = (
            codec.encode(current)
            .replace(b'"version":2', b'"version":1')
            .replace(b'"amount_cents":250', b'"amount":2.5')
        )
        await bus.publish_raw(topic, old)
        [dead, *_] = await wait_for_dead_letters(bus, topic, group, 1)
        assert dead.error_type == "DeserializationError" and "upcaster" in dead.error_message
        codec.registry.add_upcaster(
            VersionedContractEvent.__wire_name__,
            1,
            lambda data: {"amount_cents": round(data.pop("amount") * 100), **data},
        )
        await bus.requeue_dead_letters(topic, group=group)
        await received.wait_for(1)
        [event] = received.received
        assert isinstance(event, VersionedContractEvent)
        assert (event.message_id, event.amount_cents) == (current.message_id, 250)
        assert await bus.dead_letters(topic, group=group) == []

    async def test_purge_by_id_then_everything(self, bus: MessageBus, topic: str, group: str) -> None:
        _needs_dead_letters(bus)
        received = Collector(Breakable())
        await bus.subscribe(topic, received, group=group)
        sent = [make_event(n) for n in range(4)]
        await bus.publish_batch(topic, sent)
        letters = await wait_for_dead_letters(bus, topic, group, {m.message_id for m in sent})
        gone = letters[1]
        assert (
            await bus.purge_dead_letters(topic, group=group, selection=DeadLetterSelection(ids=[gone.letter_id])) == 1
        )
        left = await bus.dead_letters(topic, group=group)
        assert {d.letter_id for d in left} >= {d.letter_id for d in letters} - {gone.letter_id}
        assert gone.letter_id not in {d.letter_id for d in left}
        purged = await bus.purge_dead_letters(topic, group=group)
        assert purged == len(left) >= 3, f"purged {purged}; listed before: {sorted(d.letter_id for d in left)}"
        assert await bus.dead_letters(topic, group=group) == []
        assert await bus.requeue_dead_letters(topic, group=group) == []


def _needs_dead_letters(bus: MessageBus) -> None:
    if not bus.capabilities.dead_letter:
        pytest.skip("adapter has no dead-letter path")


async def wait_for_dead_letters(
    bus: MessageBus, topic: str, group: str | None, expected: int | Collection[str], timeout: float = 20.0
) -> list[DeadLetter]:
    """The subscription's dead letters once there are `expected` (a count, or these message ids)."""
    async with asyncio.timeout(timeout):
        while True:
            letters = await bus.dead_letters(topic, group=group)
            if isinstance(expected, int):
                if len(letters) >= expected:
                    break
            elif {d.message_id for d in letters} >= set(expected):
                break
            await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)  # a late duplicate (at-least-once) is listed too
    return await bus.dead_letters(topic, group=group)
