"""Tracing on the in-process bus: the whole flow (incoming message, handler, event store,
child message, outbox relay, projection) as the messaging semantic conventions say."""

from __future__ import annotations

import asyncio

from bento.adapters.memory import InProcessMessageBus, InProcessSettings
from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.application import telemetry
from bento.testing.events import ContractEvent, make_event
from bento.testing.tracing import assert_traced_flow, run_traced_flow


async def test_one_trace_through_store_relay_and_subscriber() -> None:
    async with InProcessMessageBus(InProcessSettings()) as bus:
        spans = await run_traced_flow(bus, InMemoryEventStore(), InMemoryCheckpointStore())
    assert_traced_flow(spans, "inprocess")


async def test_untraced_bus_leaves_trace_context_alone() -> None:
    assert telemetry.tracer is None
    seen: list[ContractEvent] = []

    async def record(message: ContractEvent) -> None:
        seen.append(message)

    async with InProcessMessageBus(InProcessSettings()) as bus:
        await bus.subscribe("untraced", record, group="g")  # type: ignore[arg-type]
        sent = make_event(1).with_metadata(trace_context={"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"})
        await bus.publish("untraced", sent)
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.005)
    assert seen[0].metadata.trace_context == sent.metadata.trace_context
