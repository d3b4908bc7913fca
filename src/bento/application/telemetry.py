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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The OpenTelemetry tracer once `enable_tracing()` ran, else None (tracing off).
tracer: Any = None
_propagator: Any = None

SYSTEM = "messaging.system"
DESTINATION = "messaging.destination.name"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
MESSAGE_ID = "messaging.message.id"
CONVERSATION_ID = "messaging.message.conversation_id"
CONSUMER_GROUP = "messaging.consumer.group.name"
BODY_SIZE = "messaging.message.body.size"


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


def span(name: str, kind: str, attributes: Mapping[str, Any], links: list[Any] | None = None) -> Any:
    """A context manager running a new span (current while inside, ended on exit, an escaping
    exception recorded as its error); `kind` is a SpanKind name. Call only with tracing on."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    started = tracer.start_span(name, kind=SpanKind[kind], attributes=attributes, links=links)
    return trace.use_span(started, end_on_exit=True, record_exception=True, set_status_on_exception=True)
