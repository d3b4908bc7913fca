"""One traced flow every broker runs (needs the OpenTelemetry SDK, in the dev extra).

An incoming message is published on `bus`; its handler loads an aggregate, appends an event
and publishes a child message; the outbox relay publishes the stored event; a projection-like
subscriber receives it. `run_traced_flow` returns the finished spans by name, and
`assert_traced_flow` checks names, kinds, attributes, parentage and the relay's span link.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bento.application import telemetry
from bento.application.outbox import OutboxRelay
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.event_store import EventStore
from bento.application.ports.message_bus import MessageBus
from bento.application.repository import EventSourcedRepository
from bento.domain.aggregate import AggregateRoot, when
from bento.domain.events import DomainEvent


class RestockRequested(DomainEvent, name="bento.tracing.restock-requested"):
    sku: str
    quantity: int


class Restocked(DomainEvent, name="bento.tracing.restocked"):
    sku: str
    quantity: int


class RestockNoted(DomainEvent, name="bento.tracing.restock-noted"):
    sku: str


class Shelf(AggregateRoot):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.stock = 0

    def restock(self, quantity: int) -> None:
        self.record(Restocked(sku=self.id, quantity=quantity))

    @when(Restocked)
    def _restocked(self, event: Restocked) -> None:
        self.stock += event.quantity


Subscribe = Callable[[MessageBus, str, Callable[[DomainEvent], Awaitable[None]], str], Awaitable[Any]]


async def _wait(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the traced flow did not finish")


async def run_traced_flow(
    bus: MessageBus, store: EventStore, checkpoints: CheckpointStore, *, settle: float = 0.0
) -> dict[str, ReadableSpan]:
    """Run the flow on `bus` (open), an empty `store` and `checkpoints` with tracing on; the
    spans by name (the random topic suffix replaced by X).
    `settle` waits after subscribing for brokers whose subscriptions start asynchronously."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.enable_tracing(provider)
    try:
        suffix = uuid.uuid4().hex[:8]
        incoming, child_topic, relayed = f"trace-in-{suffix}", f"trace-child-{suffix}", f"trace-out-{suffix}"
        shelves = EventSourcedRepository(Shelf, store)
        projected: list[DomainEvent] = []
        children: list[DomainEvent] = []

        async def handle(message: DomainEvent) -> None:
            assert isinstance(message, RestockRequested)
            shelf = await shelves.get(message.sku) or Shelf(message.sku)
            shelf.restock(message.quantity)
            await shelves.save(shelf)
            await bus.publish(child_topic, RestockNoted(sku=message.sku))

        async def project(message: DomainEvent) -> None:
            projected.append(message)

        async def note(message: DomainEvent) -> None:
            children.append(message)

        await bus.subscribe(incoming, handle, group="shelves")
        await bus.subscribe(relayed, project, group="projection")
        await bus.subscribe(child_topic, note, group="notes")
        await asyncio.sleep(settle)
        await bus.publish(incoming, RestockRequested(sku=f"sku-{suffix}", quantity=3))
        await _wait(lambda: len(children) == 1)
        relay = OutboxRelay(store, bus, checkpoints, name=f"trace-{suffix}", topic_for=lambda _: relayed)
        await relay.run_until_caught_up()
        await _wait(lambda: len(projected) == 1)
        await _wait(lambda: len([s for s in exporter.get_finished_spans() if s.name.startswith("process")]) == 3)
        spans = {s.name.replace(suffix, "X"): s for s in exporter.get_finished_spans()}
        return spans
    finally:
        telemetry.disable_tracing()


def assert_traced_flow(spans: dict[str, ReadableSpan], system: str) -> None:
    """The flow's spans as the messaging semantic conventions and Bento's promises say."""
    create_in = spans["create trace-in-X"]
    process_in = spans["process trace-in-X"]
    append = _one(spans, "append ")
    create_child = spans["create trace-child-X"]
    process_child = spans["process trace-child-X"]
    send_out = spans["send trace-out-X"]
    process_out = spans["process trace-out-X"]

    assert create_in.kind is SpanKind.PRODUCER and process_in.kind is SpanKind.CONSUMER
    assert send_out.kind is SpanKind.PRODUCER and append.kind is SpanKind.CLIENT
    attributes = dict(process_in.attributes or {})
    assert attributes[telemetry.SYSTEM] == system
    assert str(attributes[telemetry.DESTINATION]).startswith("trace-in-")
    assert attributes[telemetry.OPERATION_TYPE] == "process"
    assert attributes[telemetry.CONSUMER_GROUP] == "shelves"
    assert attributes[telemetry.MESSAGE_ID] == dict(create_in.attributes or {})[telemetry.MESSAGE_ID]
    assert dict(create_in.attributes or {})[telemetry.OPERATION_TYPE] == "create"
    assert dict(create_in.attributes or {})[telemetry.SYSTEM] == system

    trace_id = create_in.context.trace_id
    # incoming message -> handler -> event store append and the child message
    assert _parent(process_in) == create_in.context.span_id
    assert _parent(append) == process_in.context.span_id
    assert _parent(create_child) == process_in.context.span_id
    assert _parent(process_child) == create_child.context.span_id
    # the relay runs later: its own span, linked to the context stored with the event
    assert [link.context.span_id for link in send_out.links] == [process_in.context.span_id]
    # the projection's span joins the trace that produced the event
    assert _parent(process_out) == process_in.context.span_id
    for span in (process_in, append, create_child, process_child, process_out):
        assert span.context.trace_id == trace_id


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _one(spans: dict[str, ReadableSpan], prefix: str) -> ReadableSpan:
    found = [s for name, s in spans.items() if name.startswith(prefix)]
    assert len(found) == 1, sorted(spans)
    return found[0]
