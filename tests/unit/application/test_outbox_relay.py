"""OutboxRelay on the in-memory store and the in-process bus."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime

import pytest

from bento.adapters.memory import InProcessMessageBus, InProcessSettings
from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.application.errors import BrokerUnavailableError
from bento.application.outbox import OutboxRelay, stored_envelope
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent
from bento.testing.events import ContractEvent, OtherContractEvent, make_event


class FlakyCheckpoints(InMemoryCheckpointStore):
    """Refuses the next `failures` saves, like a checkpoint store that went away."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def save(self, name: str, position: int) -> None:
        if self.failures:
            self.failures -= 1
            raise BrokerUnavailableError("checkpoint store", "memory", "simulated outage")
        await super().save(name, position)


class Recorder:
    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    async def __call__(self, event: DomainEvent) -> None:
        self.events.append(event)

    async def wait_for(self, count: int) -> list[DomainEvent]:
        for _ in range(1000):
            if len(self.events) >= count:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)  # and nothing more arrives
        return self.events


async def test_publishes_in_store_order_to_wire_name_topics() -> None:
    store, checkpoints = InMemoryEventStore(), InMemoryCheckpointStore()
    async with InProcessMessageBus(InProcessSettings()) as bus:
        contract, other = Recorder(), Recorder()
        await bus.subscribe(ContractEvent.__wire_name__, contract, group="g")
        await bus.subscribe(OtherContractEvent.__wire_name__, other, group="g")
        sent = [make_event(n, key="k") for n in range(5)]
        await store.append("k", sent[:3], 0)
        await store.append("x", [OtherContractEvent(note="hi")], 0)
        await store.append("k", sent[3:], 3)
        relay = OutboxRelay(store, bus, checkpoints, batch_size=2)
        assert await relay.run_until_caught_up() == 6
        assert [e.message_id for e in await contract.wait_for(5)] == [e.message_id for e in sent]
        assert [e for e in await contract.wait_for(5)] == sent  # the same events, metadata included
        assert len(await other.wait_for(1)) == 1
        assert await relay.position() == 6
        assert await relay.run_until_caught_up() == 0


async def test_a_failed_checkpoint_republishes_only_the_unconfirmed_batch() -> None:
    store, checkpoints = InMemoryEventStore(), FlakyCheckpoints()
    async with InProcessMessageBus(InProcessSettings()) as bus:
        received = Recorder()
        await bus.subscribe(ContractEvent.__wire_name__, received, group="g")
        await store.append("k", [make_event(n, key="k") for n in range(10)], 0)
        relay = OutboxRelay(store, bus, checkpoints, batch_size=4)
        assert await relay.relay_once() == 4
        checkpoints.failures = 1
        with pytest.raises(BrokerUnavailableError):
            await relay.relay_once()  # events 5..8 published, checkpoint not saved
        restarted = OutboxRelay(store, bus, checkpoints, batch_size=4)
        assert await restarted.run_until_caught_up() == 6
        seqs = [e.seq for e in await received.wait_for(14) if isinstance(e, ContractEvent)]
        assert seqs == [0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7, 8, 9]  # at most the tail came twice


async def test_run_retries_an_outage_and_keeps_going() -> None:
    store, checkpoints = InMemoryEventStore(), FlakyCheckpoints()
    async with InProcessMessageBus(InProcessSettings()) as bus:
        received = Recorder()
        await bus.subscribe(ContractEvent.__wire_name__, received, group="g")
        checkpoints.failures = 2
        relay = OutboxRelay(store, bus, checkpoints, poll_interval=0.01)
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop=stop))
        await store.append("k", [make_event(1, key="k")], 0)
        await received.wait_for(1)
        for _ in range(500):
            if await checkpoints.load("outbox") == 1:
                break
            await asyncio.sleep(0.01)
        assert await checkpoints.load("outbox") == 1
        stop.set()
        await asyncio.wait_for(task, 2)
        assert {e.message_id for e in received.events} == {received.events[0].message_id}


async def test_envelope_needs_no_event_class_and_decodes_like_the_codec() -> None:
    store = InMemoryEventStore()
    event = make_event(7, key="agg-1", blob="é✓")
    await store.append("s", [event], 0)
    (stored,) = await store.read_all()
    body, key = stored_envelope(stored)
    assert key == "agg-1"
    assert JsonCodec().decode(body) == event
    unknown = dataclasses.replace(stored, event_type="gone.v1")
    body, _ = stored_envelope(unknown)
    assert JsonCodec.peek_type(body) == "gone.v1"


async def test_stored_events_decode_and_encode_through_the_codec() -> None:
    """StoredEvent offers what the EventStore port documents: `decode(codec)`, and the envelope
    the outbox relays is the codec's: the same envelope `encode` writes for the event."""
    codec = JsonCodec()
    store = InMemoryEventStore()
    event = make_event(3, key="agg-3", blob="ü")
    await store.append("s3", [event], 0)
    (stored,) = await store.read_all()
    assert stored.decode(codec) == event
    relayed, encoded = json.loads(stored.envelope(codec)), json.loads(codec.encode(event))
    assert relayed.keys() == encoded.keys() and relayed["message"].keys() == encoded["message"].keys()
    assert codec.decode(stored.envelope(codec)) == event


async def test_relayed_events_carry_the_metadata_headers() -> None:
    """docs/wire-format.md: a foreign consumer routes an outbox-relayed event by its headers."""
    store, checkpoints = InMemoryEventStore(), InMemoryCheckpointStore()
    async with InProcessMessageBus(InProcessSettings(max_attempts=1)) as bus:

        async def refuse(event: DomainEvent) -> None:
            raise RuntimeError("keep it as a dead letter to read its headers")

        await bus.subscribe(ContractEvent.__wire_name__, refuse, group="g")
        event = make_event(1, key="k").with_metadata(correlation_id="c-1", tenant_id="t-1")
        await store.append("k", [event], 0)
        await OutboxRelay(store, bus, checkpoints).run_until_caught_up()
        for _ in range(200):
            letters = await bus.dead_letters(ContractEvent.__wire_name__, group="g")
            if letters:
                break
            await asyncio.sleep(0.005)
        headers = letters[0].headers
        assert headers["x-bento-message-id"] == event.message_id
        assert headers["x-bento-type"] == ContractEvent.__wire_name__
        assert headers["x-bento-version"] == "1"
        assert datetime.fromisoformat(headers["x-bento-timestamp"]) == event.timestamp  # RFC 3339, Z or +00:00
        assert (headers["x-bento-correlation-id"], headers["x-bento-tenant-id"]) == ("c-1", "t-1")
