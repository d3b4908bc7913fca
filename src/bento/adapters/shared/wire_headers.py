"""The wire format on each broker: one encoder every MessageBus adapter (Kafka's too) calls on
publish, and each broker's header conventions (docs/wire-format.md has the tables).

An adapter builds `WireEncoder(codec, settings, STYLE)` once and calls `encode(message,
headers)` per message: the body plus every transport header to set. The consuming side needs
nothing per broker here: `handle_delivery(..., headers=..., transport=...)` recognises every
format and every binding's prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bento.adapters.shared.settings_base import MessageBusSettingsBase
from bento.application import telemetry
from bento.application.serialization import JsonCodec
from bento.application.wire import (
    JSON_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    HeaderPairs,
    HeaderStyle,
    WireFormat,
    encode_message,
    metadata_header_pairs,
    type_header_pairs,
)
from bento.domain.events import DomainEvent

#: CloudEvents AMQP binding: `cloudEvents_` application properties (RabbitMQ headers); the
#: content type is the AMQP `content-type` property, not a header.
AMQP = HeaderStyle("cloudEvents_", content_type_header=None)
#: CloudEvents Kafka binding: `ce_` headers and a `content-type` header.
KAFKA = HeaderStyle("ce_")
#: CloudEvents NATS binding: `ce-` headers and a `content-type` header.
NATS = HeaderStyle("ce-")
#: No binding exists; Bento uses Kafka's spelling in Pulsar properties and Redis entries' `h`.
PULSAR = HeaderStyle("ce_")
REDIS = HeaderStyle("ce_")
INPROCESS = HeaderStyle("ce_")

_CONTENT_TYPES = {
    WireFormat.BENTO: "application/vnd.bento.envelope+json",
    WireFormat.CLOUDEVENTS_BINARY: JSON_CONTENT_TYPE,
    WireFormat.CLOUDEVENTS_STRUCTURED: STRUCTURED_CONTENT_TYPE,
}


class WireEncoder:
    """Encodes messages as one bus's settings say (`wire_format`, `cloudevents_source`)."""

    __slots__ = (
        "_type_pairs",
        "codec",
        "content_type",
        "format",
        "metadata_headers",
        "source",
        "style",
        "system",
    )

    def __init__(
        self, codec: JsonCodec, settings: MessageBusSettingsBase, style: HeaderStyle, system: str = ""
    ) -> None:
        self.codec, self.style = codec, style
        #: `messaging.system` of this bus's spans (rabbitmq, nats, …).
        self.system = system
        self.format = WireFormat(settings.wire_format)
        self.source = settings.cloudevents_source
        self.metadata_headers = settings.metadata_headers
        #: The content type of every body this encoder writes (AMQP's content-type property).
        self.content_type = _CONTENT_TYPES[self.format]
        self._type_pairs: dict[type[DomainEvent], HeaderPairs] = {}  # encoded type/version headers per class

    def encode(
        self, message: DomainEvent, headers: Mapping[str, str] | None = None, *, topic: str = ""
    ) -> tuple[bytes, dict[str, str]]:
        """The body and every transport header of `message`: the metadata headers, or the
        CloudEvents attributes in binary mode, the content type in the CloudEvents modes where
        the broker has no property for it, and free headers. The `bento` format sends no
        content-type header: its body is self-describing and every header costs per message.

        With tracing on, a PRODUCER `create <topic>` span is recorded and its W3C context
        replaces the message's `trace_context`, so it travels in the body and the headers."""
        if telemetry.tracer is not None or telemetry.metrics is not None:
            message = observed_publish(message, topic, self.system)
        if self.format is WireFormat.BENTO and not self.metadata_headers:
            return self.codec.encode(message, headers), dict(headers) if headers else {}
        return encode_message(
            self.codec, message, headers, wire_format=self.format, style=self.style, source=self.source
        )

    def encode_pairs(
        self, message: DomainEvent, headers: Mapping[str, str] | None = None, *, topic: str = ""
    ) -> tuple[bytes, HeaderPairs | None]:
        """`encode`, with the headers as (name, UTF-8 bytes) pairs as Kafka clients take them
        (None when there are none). The same headers in the same order as
        `byte_headers(encode(...)[1])`; in the `bento` format with no free headers and telemetry
        off (the common case) they are built as bytes directly, which halves the cost."""
        if (
            headers
            or self.format is not WireFormat.BENTO
            or telemetry.tracer is not None
            or telemetry.metrics is not None
        ):
            body, text = self.encode(message, headers, topic=topic)
            return body, byte_headers(text) if text else None
        body = self.codec.encode(message)
        if not self.metadata_headers:
            return body, None
        cls = type(message)
        type_pairs = self._type_pairs.get(cls)
        if type_pairs is None:
            type_pairs = self._type_pairs[cls] = type_header_pairs(cls)
        return body, metadata_header_pairs(message, body, type_pairs)

    def encode_private(self, message: DomainEvent, *, topic: str = "") -> bytes:
        """Bento's envelope and no transport headers, whatever `wire_format` says: for what only
        Bento reads (the replies of remote commands), where every header costs per message.
        Counted and traced like `encode`."""
        if telemetry.tracer is not None or telemetry.metrics is not None:
            message = observed_publish(message, topic, self.system)
        return self.codec.encode(message)


def observed_publish(message: DomainEvent, topic: str, system: str) -> DomainEvent:
    """`message` as published with tracing or metrics on: counted as sent, and (tracing) with
    the W3C context of a new PRODUCER `create <topic>` span as its `trace_context`. Every bus
    calls it through `WireEncoder.encode`, Kafka (which encodes with the codec) directly; call
    it only when `telemetry.tracer` or `telemetry.metrics` is set."""
    if telemetry.metrics is not None:
        telemetry.metrics.sent(system, topic)
    if telemetry.tracer is None:
        return message
    span = telemetry.tracer.start_span(
        f"create {topic}",
        context=telemetry.parent_of(message.metadata.trace_context),
        kind=_PRODUCER(),
        attributes={
            telemetry.SYSTEM: system,
            telemetry.DESTINATION: topic,
            telemetry.OPERATION_TYPE: "create",
            telemetry.OPERATION_NAME: "publish",
            telemetry.MESSAGE_ID: message.message_id,
            telemetry.CONVERSATION_ID: message.correlation_id,
        },
    )
    try:
        from opentelemetry import trace

        return message.with_metadata(trace_context=telemetry.inject(trace.set_span_in_context(span)))
    finally:
        span.end()


def _PRODUCER() -> object:
    from opentelemetry.trace import SpanKind

    return SpanKind.PRODUCER


def byte_headers(headers: Mapping[str, str]) -> list[tuple[str, bytes]]:
    """Headers as Kafka clients take them (name, UTF-8 bytes), for the Kafka binding's `ce_` headers."""
    return [(name, value.encode()) for name, value in headers.items()]


def text_headers(pairs: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka's (name, bytes) headers as the mapping `handle_delivery(headers=...)` reads (the last
    value of a repeated name wins; a null value is an empty string)."""
    return {name: (value or b"").decode("utf-8", errors="replace") for name, value in pairs or ()}
