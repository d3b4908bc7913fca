"""Tracing on Pulsar: the shared traced flow (bento.testing.tracing) through a real broker."""

from __future__ import annotations

from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.adapters.pulsar import PulsarMessageBus, PulsarSettings
from bento.testing.tracing import assert_traced_flow, run_traced_flow


async def test_one_trace_through_store_relay_and_subscriber(pulsar_url: str) -> None:
    async with PulsarMessageBus(PulsarSettings(service_url=pulsar_url)) as bus:
        spans = await run_traced_flow(bus, InMemoryEventStore(), InMemoryCheckpointStore(), settle=0.5)
    assert_traced_flow(spans, "pulsar")
