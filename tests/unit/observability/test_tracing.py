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


async def test_in_process_dispatch_and_ask_are_internal_spans_parenting_the_handlers_work() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from bento import Query
    from bento.application.buses import CommandBus, QueryBus
    from bento.application.repository import EventSourcedRepository
    from bento.testing.tracing import Restock, Shelf

    class StockOf(Query, name="bento.tracing.stock-of"):
        sku: str

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = InMemoryEventStore()
    shelves = EventSourcedRepository(Shelf, store)

    async def restock(command: Restock) -> int:
        shelf = Shelf(command.sku)
        shelf.restock(command.quantity)
        await shelves.save(shelf)
        return shelf.stock

    async def stock_of(query: StockOf) -> int:
        shelf = await EventSourcedRepository(Shelf, store).get(query.sku)  # no cached aggregate: a read
        return shelf.stock if shelf else 0

    commands, queries = CommandBus(), QueryBus()
    commands.register(restock, Restock)
    queries.register(stock_of, StockOf)
    telemetry.enable_tracing(provider)
    try:
        command = Restock(sku="sku-1", quantity=4)
        assert await commands.dispatch(command) == 4
        assert await queries.ask(StockOf(sku="sku-1")) == 4
    finally:
        telemetry.disable_tracing()
    spans = {
        s.name.split(" ")[0] if s.name.startswith(("append", "read")) else s.name: s
        for s in exporter.get_finished_spans()
    }
    dispatch, ask = spans["dispatch bento.tracing.restock"], spans["ask bento.tracing.stock-of"]
    assert dispatch.kind is SpanKind.INTERNAL and ask.kind is SpanKind.INTERNAL
    assert dict(dispatch.attributes or {}) == {
        telemetry.MESSAGE_TYPE: "bento.tracing.restock",
        telemetry.MESSAGE_ID: command.message_id,
        telemetry.CONVERSATION_ID: command.correlation_id,
        telemetry.OPERATION_NAME: "dispatch",
    }
    assert spans["append"].parent is not None and spans["append"].parent.span_id == dispatch.context.span_id
    assert spans["read"].parent is not None and spans["read"].parent.span_id == ask.context.span_id
    # the stored event carries the dispatch span's context (what the relay links to)
    (stored,) = await store.read_all(0, 10)
    assert f"{dispatch.context.span_id:016x}" in stored.metadata
