"""OpenTelemetry tracing for every bus, the event store and the outbox relay, off by default.

The library depends on `opentelemetry-api` only (extra `bento[otel]`), and imports it only in
`enable_tracing()`. Until then `tracer` is None and every hook costs one module-attribute test,
so an untraced service pays nothing on the hot path. The trace context travels as W3C
`traceparent`/`tracestate` in `MessageMetadata.trace_context`, which the wire format already
writes into the envelope and the transport headers of every broker and reads back on delivery
(bento.application.wire); this module only fills and reads that mapping.

Span names and attributes follow the OpenTelemetry messaging semantic conventions:
`create <topic>` (PRODUCER) when a bus encodes a message, `process <topic>` (CONSUMER) around
a handler, `send <topic>` (PRODUCER) when the outbox relay publishes a stored event, with a
span link to the context stored with the event (the relay runs later, in another trace).
Commands and queries: `dispatch <wire name>` / `ask <wire name>` (INTERNAL) in process;
over a broker `dispatch|ask <topic>` (CLIENT, awaiting the reply) or `send <topic>` (PRODUCER)
at the caller and `handle <topic>` at the handler's service (SERVER when it replies, CONSUMER
for `send`). A projection batch is `project <projection>` (INTERNAL), linked to the stored
contexts of its events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

#: The OpenTelemetry tracer once `enable_tracing()` ran, else None (tracing off).
tracer: Any = None
_propagator: Any = None


class MessagingMetrics(Protocol):
    """What every bus reports per message (bento.application.telemetry.metrics).

    `sent` once per message a bus encodes for publishing; `processed` once per delivery that
    reached a handler (`outcome` ack, retry or dead; `error_type` the exception's class name
    when it failed); `dead_lettered` for a delivery dead-lettered before any handler ran
    (undecodable or too large)."""

    def sent(self, system: str, topic: str) -> None: ...

    def processed(
        self,
        system: str,
        topic: str,
        group: str | None,
        message_type: str,
        outcome: str,
        seconds: float,
        error_type: str,
    ) -> None: ...

    def dead_lettered(self, system: str, topic: str, group: str | None, error_type: str) -> None: ...


#: Where the buses report counts and durations once `enable_metrics()` ran, else None.
metrics: MessagingMetrics | None = None

#: Instrument names: the messaging semantic conventions', then Bento's own.
SENT_MESSAGES = "messaging.client.sent.messages"
CONSUMED_MESSAGES = "messaging.client.consumed.messages"
PROCESS_DURATION = "messaging.process.duration"
HANDLER_DURATION = "bento.handler.duration"
RETRIES = "bento.messaging.retries"
DEAD_LETTERS = "bento.messaging.dead_letters"

SYSTEM = "messaging.system"
DESTINATION = "messaging.destination.name"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
MESSAGE_ID = "messaging.message.id"
CONVERSATION_ID = "messaging.message.conversation_id"
CONSUMER_GROUP = "messaging.consumer.group.name"
BODY_SIZE = "messaging.message.body.size"
MESSAGE_TYPE = "bento.message.type"


def enable_tracing(tracer_provider: Any = None) -> None:
    """Trace every bus, store and relay from now on, with `tracer_provider` (the global
    provider when None; configure it with the OpenTelemetry SDK before calling)."""
    global tracer, _propagator
    try:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("tracing needs OpenTelemetry: pip install 'bento-ddd[otel]'") from exc
    tracer = trace.get_tracer("bento", _version(), tracer_provider=tracer_provider)
    _propagator = TraceContextTextMapPropagator()


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bento-ddd")
    except PackageNotFoundError:
        return None


def disable_tracing() -> None:
    """Back to no tracing (tests, or a service switching it off)."""
    global tracer
    tracer = None


def extract(trace_context: Mapping[str, str]) -> Any:
    """The OpenTelemetry context a stored or received `trace_context` names (None when empty)."""
    if not trace_context or _propagator is None:
        return None
    return _propagator.extract(trace_context)


def inject(context: Any = None) -> dict[str, str]:
    """The W3C headers (`traceparent`, `tracestate`) of `context` (the current one when None)."""
    carrier: dict[str, str] = {}
    if _propagator is not None:
        _propagator.inject(carrier, context=context)
    return carrier


def link_to(trace_context: Mapping[str, str]) -> list[Any]:
    """A span link to the span `trace_context` names, as `start_span(links=...)` takes it."""
    from opentelemetry import trace

    context = extract(trace_context)
    if context is None:
        return []
    span_context = trace.get_current_span(context).get_span_context()
    return [trace.Link(span_context)] if span_context.is_valid else []


def parent_of(trace_context: Mapping[str, str]) -> Any:
    """The parent for a new span: the active span when there is one (a handler's), else the
    context `trace_context` carries, else None (a new trace)."""
    from opentelemetry import trace

    if trace.get_current_span().get_span_context().is_valid:
        return None  # start_span parents on the current context
    return extract(trace_context)


def span(
    name: str, kind: str, attributes: Mapping[str, Any], links: list[Any] | None = None, context: Any = None
) -> Any:
    """A context manager running a new span (current while inside, ended on exit, an escaping
    exception recorded as its error); `kind` is a SpanKind name; `context` the parent's (the
    current span's when None). Call only with tracing on."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    started = tracer.start_span(name, context=context, kind=SpanKind[kind], attributes=attributes, links=links)
    return trace.use_span(started, end_on_exit=True, record_exception=True, set_status_on_exception=True)


def message_attributes(message: Any, operation: str) -> dict[str, Any]:
    """The attributes of a span about one command, query or event: its wire name, id and
    correlation id, and the operation (`dispatch`, `ask`, `send`, `handle`)."""
    return {
        MESSAGE_TYPE: type(message).__wire_name__,
        MESSAGE_ID: message.message_id,
        CONVERSATION_ID: message.correlation_id,
        OPERATION_NAME: operation,
    }


def links_to_stored(metadata_json: Sequence[str], limit: int = 32) -> list[Any]:
    """Span links to the contexts stored with events (their `metadata` JSON), at most `limit`:
    a projection batch applies events from many traces, so it links to them, parenting on none."""
    import json

    links: list[Any] = []
    for raw in metadata_json:
        if len(links) >= limit:
            break
        trace_context = json.loads(raw).get("trace_context")
        if isinstance(trace_context, dict) and trace_context:
            links.extend(link_to(trace_context))
    return links


def enable_metrics(recorder: MessagingMetrics | None = None, *, meter_provider: Any = None) -> MessagingMetrics:
    """Report every bus's counts and durations to `recorder`, or by default to OpenTelemetry
    instruments from `meter_provider` (the global one when None). Returns the recorder."""
    global metrics
    metrics = recorder if recorder is not None else OpenTelemetryMetrics(meter_provider)
    return metrics


def disable_metrics() -> None:
    global metrics
    metrics = None


class OpenTelemetryMetrics:
    """`MessagingMetrics` as OpenTelemetry instruments (API only; the SDK exports them)."""

    def __init__(self, meter_provider: Any = None) -> None:
        try:
            from opentelemetry import metrics as otel_metrics
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("metrics need OpenTelemetry: pip install 'bento-ddd[otel]'") from exc
        meter = otel_metrics.get_meter("bento", _version() or "", meter_provider=meter_provider)
        self._sent = meter.create_counter(SENT_MESSAGES, unit="{message}", description="Messages a bus published")
        self._consumed = meter.create_counter(
            CONSUMED_MESSAGES, unit="{message}", description="Messages delivered to a handler"
        )
        self._process = meter.create_histogram(PROCESS_DURATION, unit="s", description="Delivery processing time")
        self._handler = meter.create_histogram(HANDLER_DURATION, unit="s", description="Handler time by message type")
        self._retries = meter.create_counter(RETRIES, unit="{message}", description="Deliveries to be retried")
        self._dead = meter.create_counter(DEAD_LETTERS, unit="{message}", description="Messages dead-lettered")

    def sent(self, system: str, topic: str) -> None:
        self._sent.add(1, {SYSTEM: system, DESTINATION: topic})

    def processed(
        self,
        system: str,
        topic: str,
        group: str | None,
        message_type: str,
        outcome: str,
        seconds: float,
        error_type: str,
    ) -> None:
        attributes = {SYSTEM: system, DESTINATION: topic, CONSUMER_GROUP: group or ""}
        self._consumed.add(1, attributes)
        failed = {**attributes, "error.type": error_type} if error_type else attributes
        self._process.record(seconds, failed)
        self._handler.record(seconds, {"bento.message.type": message_type, "bento.outcome": outcome})
        if outcome == "retry":
            self._retries.add(1, failed)
        elif outcome == "dead":
            self._dead.add(1, failed)

    def dead_lettered(self, system: str, topic: str, group: str | None, error_type: str) -> None:
        self._dead.add(1, {SYSTEM: system, DESTINATION: topic, CONSUMER_GROUP: group or "", "error.type": error_type})
