"""Tracing on Kafka: the shared traced flow (bento.testing.tracing) through a real broker."""

from __future__ import annotations

from bento.adapters.kafka import KafkaMessageBus
from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.testing.tracing import assert_traced_flow, run_traced_flow


async def test_one_trace_through_store_relay_and_subscriber(kafka_bus: KafkaMessageBus) -> None:
    spans = await run_traced_flow(kafka_bus, InMemoryEventStore(), InMemoryCheckpointStore(), settle=1.0)
    assert_traced_flow(spans, "kafka")
