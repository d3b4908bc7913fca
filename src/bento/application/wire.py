"""How a message looks on a transport: Bento's envelope or CloudEvents 1.0, and its metadata
as transport headers (docs/wire-format.md is the spec; this module is its code).

Encoding depends on the bus's `wire_format` and on the broker's header conventions
(`HeaderStyle`: the CloudEvents binding's attribute prefix). Decoding depends on neither: a
consumer recognises all three formats by their shape (a CloudEvents `specversion` header under
any binding's prefix, a body with `specversion`, or Bento's `type`/`version`/`message`), so a bus
set to one format accepts the others. A plain JSON body from a foreign producer decodes into the
subscription's `message_type`; its id and timestamp come from the body when present, else from
the transport (`TransportFacts`), so every redelivery of one message keeps the same id.
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bento.application.errors import DeserializationError, UnknownMessageTypeError
from bento.domain.errors import clipped
from bento.domain.events import DomainEvent


class WireFormat(enum.StrEnum):
    BENTO = "bento"
    CLOUDEVENTS_BINARY = "cloudevents-binary"
    CLOUDEVENTS_STRUCTURED = "cloudevents-structured"


#: Metadata headers: every broker, in the `bento` and `cloudevents-structured` formats.
ID_HEADER = "x-bento-message-id"
TYPE_HEADER = "x-bento-type"
VERSION_HEADER = "x-bento-version"
TIME_HEADER = "x-bento-timestamp"
CORRELATION_HEADER = "x-bento-correlation-id"
CAUSATION_HEADER = "x-bento-causation-id"
TENANT_HEADER = "x-bento-tenant-id"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
CONTENT_TYPE_HEADER = "content-type"
#: How FastStream spells the correlation id in headers; read on plain foreign payloads.
FASTSTREAM_CORRELATION_HEADER = "correlation_id"

JSON_CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
_TIMESTAMP_KEY = b'"timestamp":"'
#: Every binding's binary-mode prefix: AMQP (`cloudEvents_`, and the older `cloudEvents:`),
#: Kafka/Pulsar/Redis (`ce_`), NATS (`ce-`). Decoding accepts any of them on any broker.
CE_PREFIXES = ("cloudEvents_", "cloudEvents:", "ce_", "ce-")
#: (prefix, the `specversion` header under it): looked for in every received message's headers.
_SPECVERSION_HEADERS = tuple((prefix, prefix + "specversion") for prefix in CE_PREFIXES)
#: CloudEvents extension attributes for Bento's metadata (lowercase alphanumerics, per the spec).
CE_EXTENSIONS = {
    "correlationid": "correlation_id",
    "causationid": "causation_id",
    "tenantid": "tenant_id",
    "partitionkey": "aggregate_id",
    "aggregatetype": "aggregate_type",
}


@dataclass(frozen=True, slots=True)
class HeaderStyle:
    """One broker's header conventions: the binary-mode attribute prefix, and whether the
    content type travels in a header (None: in a transport property, as AMQP's)."""

    ce_prefix: str
    content_type_header: str | None = CONTENT_TYPE_HEADER


@dataclass(frozen=True, slots=True)
class TransportFacts:
    """What the transport itself says about a delivery, stable across redeliveries: its id
    (AMQP message_id, Nats-Msg-Id or the stream sequence, the Redis entry id, the Pulsar
    message id), when the broker stored it, and AMQP's correlation_id property."""

    message_id: str | None = None
    timestamp: datetime | None = None
    correlation_id: str | None = None


#: Adapters pass facts lazily when reading them costs (parsing a NATS reply subject).
Transport = TransportFacts | Callable[[], TransportFacts] | None


def facts(transport: Transport) -> TransportFacts:
    if transport is None:
        return TransportFacts()
    return transport if isinstance(transport, TransportFacts) else transport()


def metadata_headers(message: DomainEvent, timestamp: str | None = None) -> dict[str, str]:
    """Bento's metadata as transport headers, so a foreign consumer routes and traces without
    parsing the body. Called once per published message: plain dict building only; `timestamp`
    is the RFC 3339 text when the caller has it already (formatting one costs microseconds)."""
    cls, meta = type(message), message.metadata
    headers = {
        ID_HEADER: message.message_id,
        TYPE_HEADER: cls.__wire_name__,
        VERSION_HEADER: str(cls.__schema_version__),
        TIME_HEADER: timestamp or message.timestamp.isoformat(),
    }
    if meta.correlation_id:
        headers[CORRELATION_HEADER] = meta.correlation_id
    if meta.causation_id:
        headers[CAUSATION_HEADER] = meta.causation_id
    if meta.tenant_id:
        headers[TENANT_HEADER] = meta.tenant_id
    if meta.trace_context:
        _add_trace(headers, meta.trace_context)
    return headers


#: (name, UTF-8 value) pairs, as Kafka clients take headers.
HeaderPairs = list[tuple[str, bytes]]


def type_header_pairs(cls: type[DomainEvent]) -> HeaderPairs:
    """The metadata headers every message of `cls` carries alike (its type and version),
    encoded; `metadata_header_pairs` takes them so a publisher encodes them once per class."""
    return [(TYPE_HEADER, cls.__wire_name__.encode()), (VERSION_HEADER, str(cls.__schema_version__).encode())]


def metadata_header_pairs(message: DomainEvent, body: bytes, type_pairs: HeaderPairs) -> HeaderPairs:
    """`metadata_headers(message)` as encoded pairs, in the same order, for the envelope `body`
    of `message`: built straight as bytes (the timestamp is the envelope's own bytes), because
    a Kafka publisher would otherwise build the text dict and then encode every value of it."""
    meta = message.metadata
    pairs = [
        (ID_HEADER, message.message_id.encode()),
        *type_pairs,
        (TIME_HEADER, _envelope_timestamp_bytes(message, body)),
    ]
    if meta.correlation_id:
        pairs.append((CORRELATION_HEADER, meta.correlation_id.encode()))
    if meta.causation_id:
        pairs.append((CAUSATION_HEADER, meta.causation_id.encode()))
    if meta.tenant_id:
        pairs.append((TENANT_HEADER, meta.tenant_id.encode()))
    if meta.trace_context:
        for name in (TRACEPARENT, TRACESTATE):
            value = meta.trace_context.get(name)
            if value:
                pairs.append((name, value.encode()))
    return pairs


def stored_metadata_headers(
    event_id: str, event_type: str, schema_version: int, metadata: Mapping[str, Any]
) -> dict[str, str]:
    """`metadata_headers` of an event relayed from the store (the outbox has its columns and
    metadata JSON, not its class)."""
    headers = {ID_HEADER: event_id, TYPE_HEADER: event_type, VERSION_HEADER: str(schema_version)}
    for header, name in (
        (TIME_HEADER, "timestamp"),
        (CORRELATION_HEADER, "correlation_id"),
        (CAUSATION_HEADER, "causation_id"),
        (TENANT_HEADER, "tenant_id"),
    ):
        value = metadata.get(name)
        if isinstance(value, str) and value:
            headers[header] = value
    trace = metadata.get("trace_context")
    if isinstance(trace, dict):
        _add_trace(headers, {k: v for k, v in trace.items() if isinstance(v, str)})
    return headers


def cloudevent_attributes(message: DomainEvent, source: str) -> dict[str, str]:
    """The CloudEvents 1.0 context attributes of `message` (every value a string)."""
    cls, meta = type(message), message.metadata
    attributes = {
        "specversion": "1.0",
        "id": message.message_id,
        "source": source,
        "type": cls.__wire_name__,
        "time": message.timestamp.isoformat(),
        "datacontenttype": JSON_CONTENT_TYPE,
        "schemaversion": str(cls.__schema_version__),
    }
    for extension, field_name in CE_EXTENSIONS.items():
        value = getattr(meta, field_name)
        if value:
            attributes[extension] = value
    if meta.trace_context:
        _add_trace(attributes, meta.trace_context)
    return attributes


def _add_trace(target: dict[str, str], trace_context: Mapping[str, str]) -> None:
    for name in (TRACEPARENT, TRACESTATE):
        value = trace_context.get(name)
        if value:
            target[name] = value


def text(value: object) -> str:
    """A header value as text: AMQP tables and Kafka headers hold bytes, other brokers str;
    a header without a value (Kafka's null, AMQP's void) is empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def binary_attributes(headers: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The CloudEvents attributes of a binary-mode message (None when `headers` carry no
    `specversion` under any binding's prefix)."""
    if not headers:
        return None
    for prefix, key in _SPECVERSION_HEADERS:
        if key in headers:
            return _binary_attributes(headers, prefix)
    return None


def _binary_attributes(headers: Mapping[str, Any], prefix: str) -> dict[str, str]:
    cut = len(prefix)
    attributes = {k[cut:]: text(v) for k, v in headers.items() if k.startswith(prefix)}
    content_type = headers.get(CONTENT_TYPE_HEADER)
    if content_type is not None and "datacontenttype" not in attributes:
        attributes["datacontenttype"] = text(content_type)
    for name in (TRACEPARENT, TRACESTATE):
        if name in headers and name not in attributes:
            attributes[name] = text(headers[name])
    return attributes


def foreign_metadata(headers: Mapping[str, Any] | None, transport: TransportFacts) -> dict[str, Any]:
    """Metadata of a plain foreign message, from Bento's headers when a producer set them, the
    transport's correlation id and an inbound W3C trace context."""
    headers = headers or {}
    meta: dict[str, Any] = {}
    for header, name in ((CORRELATION_HEADER, "correlation_id"), (CAUSATION_HEADER, "causation_id")):
        if header in headers:
            meta[name] = text(headers[header])
    if TENANT_HEADER in headers:
        meta["tenant_id"] = text(headers[TENANT_HEADER])
    if "correlation_id" not in meta:
        # AMQP's property, else FastStream's `correlation_id` header (NATS, Redis)
        fallback = transport.correlation_id or headers.get(FASTSTREAM_CORRELATION_HEADER)
        if fallback:
            meta["correlation_id"] = text(fallback)
    trace = {name: text(headers[name]) for name in (TRACEPARENT, TRACESTATE) if name in headers}
    if trace:
        meta["trace_context"] = trace
    return meta


def body_digest_id(body: bytes) -> str:
    """A message id for a foreign message whose transport carries none (RabbitMQ without a
    message_id): derived from the body, so redeliveries keep it (identical bodies share it)."""
    return str(uuid.UUID(bytes=hashlib.sha256(body).digest()[:16], version=5))


def cloudevent_fields(attributes: Mapping[str, Any], data: object, transport: Transport) -> dict[str, Any]:
    """The model fields of a CloudEvent: `data` (a JSON object) plus id, time and metadata from
    its attributes; the transport's timestamp when the event has no `time`."""
    event_id = attributes.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise DeserializationError("CloudEvent needs a string 'id'", wire_name=_str(attributes.get("type")))
    if not isinstance(data, dict):
        raise DeserializationError(
            f"CloudEvent data must be a JSON object, got {type(data).__name__}",
            wire_name=_str(attributes.get("type")),
            message_id=event_id,
        )
    fields = {**data, "message_id": event_id}
    time = attributes.get("time") or facts(transport).timestamp
    if time:
        fields["timestamp"] = time
    meta: dict[str, Any] = {name: attributes[ext] for ext, name in CE_EXTENSIONS.items() if attributes.get(ext)}
    trace = {name: attributes[name] for name in (TRACEPARENT, TRACESTATE) if attributes.get(name)}
    if trace:
        meta["trace_context"] = trace
    if meta:
        fields["metadata"] = meta
    return fields


def plain_fields(
    data: dict[str, Any], body: bytes, headers: Mapping[str, Any] | None, transport: Transport
) -> dict[str, Any]:
    """The model fields of a plain JSON object from a foreign producer: its own `message_id`,
    `timestamp` and `metadata` when present, else the transport's id and time (stable across
    redeliveries), Bento's headers and the inbound trace context."""
    known = facts(transport)
    fields = dict(data)
    if "message_id" not in fields:
        header_id = headers.get(ID_HEADER) if headers else None
        fields["message_id"] = known.message_id or (text(header_id) if header_id else None) or body_digest_id(body)
    if "timestamp" not in fields:
        header_time = headers.get(TIME_HEADER) if headers else None
        time = text(header_time) if header_time else known.timestamp
        if time:
            fields["timestamp"] = time
    if "metadata" not in fields:
        meta = foreign_metadata(headers, known)
        if meta:
            fields["metadata"] = meta
    return fields


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def encode_message(
    codec: Encoder,
    message: DomainEvent,
    headers: Mapping[str, str] | None,
    *,
    wire_format: WireFormat,
    style: HeaderStyle,
    source: str,
) -> tuple[bytes, dict[str, str]]:
    """The body and transport headers of `message` in `wire_format` (docs/wire-format.md):
    Bento's envelope with the metadata headers, or a CloudEvent in binary mode (attributes as
    headers under the broker's binding prefix) or structured mode. `headers` (free headers)
    travel as transport headers in every format."""
    if wire_format is WireFormat.BENTO:
        body = codec.encode(message, headers)
        out = metadata_headers(message, _envelope_timestamp(body))
    else:
        body, out = cloudevent_message(message, codec.encode_payload(message), wire_format, style, source)
    if headers:
        out.update(headers)
    return body, out


def _envelope_timestamp(body: bytes) -> str | None:
    """The message's timestamp as the envelope spells it (pydantic's RFC 3339). The first
    `"timestamp":"` in an envelope is the message's own: it follows `type` and `message_id`,
    JSON strings that cannot hold an unescaped quote."""
    start = body.find(_TIMESTAMP_KEY)
    if start < 0:
        return None
    start += len(_TIMESTAMP_KEY)
    end = body.find(b'"', start)
    return body[start:end].decode() if end > start else None


def _envelope_timestamp_bytes(message: DomainEvent, body: bytes) -> bytes:
    """`_envelope_timestamp` without decoding it (the message's own when the body has none)."""
    start = body.find(_TIMESTAMP_KEY)
    if start >= 0:
        start += len(_TIMESTAMP_KEY)
        end = body.find(b'"', start)
        if end > start:
            return body[start:end]
    return message.timestamp.isoformat().encode()


def cloudevent_message(
    message: DomainEvent, data: bytes, wire_format: WireFormat, style: HeaderStyle, source: str
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of `message` as a CloudEvent whose `data` is `data` (the payload JSON):
    binary mode puts the attributes in headers under the broker's prefix (and the W3C trace
    headers unprefixed), structured mode writes the JSON event format."""
    attributes = cloudevent_attributes(message, source)
    if wire_format is WireFormat.CLOUDEVENTS_BINARY:
        body = data
        out = {style.ce_prefix + name: value for name, value in attributes.items()}
        out.update({k: attributes[k] for k in (TRACEPARENT, TRACESTATE) if k in attributes})
        content_type = JSON_CONTENT_TYPE
    else:
        body = json.dumps(attributes, separators=(",", ":"), ensure_ascii=False).encode()[:-1]
        body += b',"data":' + data + b"}"
        out = metadata_headers(message)
        content_type = STRUCTURED_CONTENT_TYPE
    if style.content_type_header:
        out[style.content_type_header] = content_type
    return body, out


def require_json_data(attributes: Mapping[str, Any]) -> None:
    content_type = attributes.get("datacontenttype")
    if isinstance(content_type, str) and "json" not in content_type.lower():
        raise DeserializationError(f"CloudEvent data is {clipped(content_type, 80)!r}; Bento reads JSON data only")


def cloudevent_class(
    registry: Resolver,
    wire_name: str,
    attributes: Mapping[str, Any],
    event_id: str,
    message_type: type[DomainEvent] | None,
) -> tuple[type[DomainEvent], int]:
    """The class a CloudEvent decodes into (its registered `type`, else the subscription's
    `message_type`) and the schema version it was written at (`schemaversion`, else current)."""
    try:
        cls = registry.resolve(wire_name, message_id=event_id)
    except UnknownMessageTypeError:
        if message_type is None:
            raise
        cls = message_type
    try:
        return cls, int(attributes.get("schemaversion", cls.__schema_version__))
    except (TypeError, ValueError):
        raise DeserializationError(
            "CloudEvent 'schemaversion' is not an integer", wire_name=wire_name, message_id=event_id
        ) from None


class Resolver(Protocol):
    def resolve(self, wire_name: str, *, message_id: str | None = None) -> type[DomainEvent]: ...


class Encoder(Protocol):
    def encode(self, message: DomainEvent, headers: Mapping[str, str] | None = None) -> bytes: ...

    def encode_payload(self, message: DomainEvent) -> bytes: ...
