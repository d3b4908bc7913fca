"""Tracing on NATS JetStream: the shared traced flow (bento.testing.tracing) through a real server."""

from __future__ import annotations

from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.adapters.nats import NatsMessageBus
from bento.testing.tracing import assert_traced_flow, run_traced_flow


async def test_one_trace_through_store_relay_and_subscriber(nats_settings) -> None:  # type: ignore[no-untyped-def]
    async with NatsMessageBus(nats_settings()) as bus:
        spans = await run_traced_flow(bus, InMemoryEventStore(), InMemoryCheckpointStore())
    assert_traced_flow(spans, "nats")
