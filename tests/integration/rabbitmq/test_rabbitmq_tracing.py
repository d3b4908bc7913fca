"""Tracing on RabbitMQ: the shared traced flow (bento.testing.tracing) through a real broker."""

from __future__ import annotations

from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.adapters.rabbitmq import RabbitMQMessageBus
from bento.testing.tracing import assert_traced_flow, run_traced_flow


async def test_one_trace_through_store_relay_and_subscriber(rabbitmq_settings) -> None:  # type: ignore[no-untyped-def]
    async with RabbitMQMessageBus(rabbitmq_settings()) as bus:
        spans = await run_traced_flow(bus, InMemoryEventStore(), InMemoryCheckpointStore())
    assert_traced_flow(spans, "rabbitmq")
