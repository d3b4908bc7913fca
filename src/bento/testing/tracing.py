"""One traced flow every broker runs (needs the OpenTelemetry SDK, in the dev extra).

An incoming command is dispatched over `bus` with the remote CommandBus; its handler, in the
"shelves" service, loads an aggregate, appends an event and publishes a child message, and
replies; the outbox relay publishes the stored event; a subscriber receives it, and a
ProjectionRunner applies it from the store. `run_traced_flow` returns the finished spans by
name, and `assert_traced_flow` checks names, kinds, attributes, parentage and the span links.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bento.application import telemetry
from bento.application.messages import Command
from bento.application.outbox import OutboxRelay
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.event_store import EventStore
from bento.application.ports.message_bus import MessageBus
from bento.application.projections import Projection, ProjectionRunner, handles
from bento.application.remote import RemoteCommandBus, RequestReply
from bento.application.repository import EventSourcedRepository
from bento.domain.aggregate import AggregateRoot, when
from bento.domain.events import DomainEvent


class Restock(Command, name="bento.tracing.restock"):
    sku: str
    quantity: int


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


class ShelfProjection(Projection, name="bento.tracing.shelves"):
    def __init__(self) -> None:
        self.stock: dict[str, int] = {}

    @handles(Restocked)
    def restocked(self, event: Restocked) -> None:
        self.stock[event.sku] = self.stock.get(event.sku, 0) + event.quantity


async def _wait(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the traced flow did not finish")


def _borrowed(bus: MessageBus) -> Callable[[], Any]:
    """The open `bus` as a RequestReply transport (left open when the link closes)."""

    @asynccontextmanager
    async def transport() -> AsyncIterator[MessageBus]:
        yield bus

    return transport


async def run_traced_flow(
    bus: MessageBus, store: EventStore, checkpoints: CheckpointStore, *, settle: float = 0.0
) -> dict[str, ReadableSpan]:
    """Run the flow on `bus` (open), an empty `store` and `checkpoints` with tracing on; the
    spans by name (the random suffix of topics and names replaced by X).
    `settle` waits after subscribing for brokers whose subscriptions start asynchronously."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.enable_tracing(provider)
    system = _system(bus)
    suffix = uuid.uuid4().hex[:8]
    prefix, child_topic, relayed = f"trace-{suffix}.", f"trace-child-{suffix}", f"trace-out-{suffix}"
    # One link per bus, as in a service that serves and calls: a broker's direct reply route
    # (RabbitMQ's reply-to) has one taker per connection.
    server_link = caller_link = RequestReply(_borrowed(bus), service="shelves", topic_prefix=prefix, system=system)
    try:
        shelves = EventSourcedRepository(Shelf, store)
        projected: list[DomainEvent] = []
        children: list[DomainEvent] = []

        async def restock(command: Restock) -> int:
            shelf = await shelves.get(command.sku) or Shelf(command.sku)
            shelf.restock(command.quantity)
            await shelves.save(shelf)
            await bus.publish(child_topic, RestockNoted(sku=command.sku))
            return shelf.stock

        async def project(message: DomainEvent) -> None:
            projected.append(message)

        async def note(message: DomainEvent) -> None:
            children.append(message)

        server = RemoteCommandBus(server_link)
        server.register(restock, Restock)
        await server.serve_all()
        await bus.subscribe(relayed, project, group="projection")
        await bus.subscribe(child_topic, note, group="notes")
        caller = RemoteCommandBus(caller_link)
        await caller_link.transport()  # the reply topic's subscription
        await asyncio.sleep(settle)
        assert await caller.dispatch(Restock(sku=f"sku-{suffix}", quantity=3), timeout=30) == 3
        await _wait(lambda: len(children) == 1)
        relay = OutboxRelay(store, bus, checkpoints, name=f"trace-{suffix}", topic_for=lambda _: relayed)
        await relay.run_until_caught_up()
        runner = ProjectionRunner(ShelfProjection(), store, checkpoints, name=f"shelves-{suffix}")
        await runner.run_until_caught_up()
        await _wait(lambda: len(projected) == 1)
        wanted = {f"process {relayed}", f"process {child_topic}", f"handle {prefix}{Restock.__wire_name__}"}
        await _wait(lambda: wanted <= {s.name for s in exporter.get_finished_spans()})
        return {s.name.replace(suffix, "X"): s for s in exporter.get_finished_spans()}
    finally:
        telemetry.disable_tracing()
        await caller_link.close()


def _system(bus: MessageBus) -> str:
    """The bus's `messaging.system`, as its own spans name it."""
    names = {"InProcess": "inprocess", "RabbitMQ": "rabbitmq", "Nats": "nats", "Redis": "redis"}
    names.update(Kafka="kafka", Pulsar="pulsar")
    return next((system for prefix, system in names.items() if type(bus).__name__.startswith(prefix)), "")


def assert_traced_flow(spans: dict[str, ReadableSpan], system: str) -> None:
    """The flow's spans as the messaging semantic conventions and Bento's promises say."""
    command_topic = f"trace-X.{Restock.__wire_name__}"
    dispatch = spans[f"dispatch {command_topic}"]
    handle = spans[f"handle {command_topic}"]
    append = _one(spans, "append ")
    create_child = spans["create trace-child-X"]
    process_child = spans["process trace-child-X"]
    send_out = spans["send trace-out-X"]
    process_out = spans["process trace-out-X"]
    project = spans["project shelves-X"]

    assert dispatch.kind is SpanKind.CLIENT and handle.kind is SpanKind.SERVER
    assert create_child.kind is SpanKind.PRODUCER and process_child.kind is SpanKind.CONSUMER
    assert send_out.kind is SpanKind.PRODUCER and append.kind is SpanKind.CLIENT
    assert project.kind is SpanKind.INTERNAL
    called = dict(dispatch.attributes or {})
    assert called[telemetry.SYSTEM] == system
    assert str(called[telemetry.DESTINATION]).startswith("trace-")
    assert str(called[telemetry.DESTINATION]).endswith(f".{Restock.__wire_name__}")
    assert called[telemetry.OPERATION_NAME] == "dispatch" and called[telemetry.MESSAGE_TYPE] == Restock.__wire_name__
    handled = dict(handle.attributes or {})
    assert handled[telemetry.MESSAGE_ID] == called[telemetry.MESSAGE_ID]
    assert handled[telemetry.CONSUMER_GROUP] == f"bento.handlers.{Restock.__wire_name__}"
    assert handled[telemetry.OPERATION_TYPE] == "process" and handled[telemetry.SYSTEM] == system
    attributes = dict(process_child.attributes or {})
    assert attributes[telemetry.SYSTEM] == system
    assert str(attributes[telemetry.DESTINATION]).startswith("trace-child-")
    assert attributes[telemetry.OPERATION_TYPE] == "process"
    assert attributes[telemetry.CONSUMER_GROUP] == "notes"
    assert attributes[telemetry.MESSAGE_ID] == dict(create_child.attributes or {})[telemetry.MESSAGE_ID]
    assert dict(create_child.attributes or {})[telemetry.OPERATION_TYPE] == "create"
    assert dict(create_child.attributes or {})[telemetry.SYSTEM] == system
    batch = dict(project.attributes or {})
    assert batch["bento.projection.batch.size"] == 1
    first, last = batch["bento.projection.position.first"], batch["bento.projection.position.last"]
    assert isinstance(first, int) and first == last and first >= 1

    trace_id = dispatch.context.trace_id
    # the incoming command crosses the broker (through the `create`/`process` spans of the
    # command topic, or the broker's own request/reply) to its handler
    assert dispatch.context.span_id in _ancestors(handle, spans)
    # the handler's event store append and child message
    assert _parent(append) == handle.context.span_id
    assert _parent(create_child) == handle.context.span_id
    assert _parent(process_child) == create_child.context.span_id
    # the relay runs later: its own span, linked to the context stored with the event
    assert [link.context.span_id for link in send_out.links] == [handle.context.span_id]
    # the subscriber's span joins the trace that produced the event
    assert _parent(process_out) == handle.context.span_id
    # a projection batch links to the contexts stored with its events
    assert [link.context.span_id for link in project.links] == [handle.context.span_id]
    for span in (handle, append, create_child, process_child, process_out):
        assert span.context.trace_id == trace_id


def _ancestors(span: ReadableSpan, spans: dict[str, ReadableSpan]) -> set[int]:
    by_id = {s.context.span_id: s for s in spans.values()}
    found: set[int] = set()
    parent = _parent(span)
    while parent is not None and parent not in found:
        found.add(parent)
        parent = _parent(by_id[parent]) if parent in by_id else None
    return found


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _one(spans: dict[str, ReadableSpan], prefix: str) -> ReadableSpan:
    found = [s for name, s in spans.items() if name.startswith(prefix)]
    assert len(found) == 1, sorted(spans)
    return found[0]
