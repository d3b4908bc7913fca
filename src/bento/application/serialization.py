"""JSON envelopes for messages on the wire and rows in the event store.

Wire format (one JSON object, UTF-8; docs/wire-format.md is the spec, which also covers
CloudEvents and foreign payloads, decoded here too, see `decode` and application/wire.py):

    {"type": "order.placed", "version": 1, "message": {<every model field>}}

`message` is pydantic's own JSON of the model (ids, timestamp, metadata and payload),
so encoding is one `model_dump_json` plus a few bytes. Decoding resolves `type`
through a MessageRegistry (registered wire names only, never an import path), runs
upcasters from the stored version to the class's current one, then validates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from bento.application import wire
from bento.application.errors import DeserializationError, SerializationError, UnknownMessageTypeError
from bento.application.wire import Transport
from bento.domain.errors import DuplicateMessageTypeError, clipped
from bento.domain.events import DomainEvent
from bento.domain.wire import concrete_message_types

if TYPE_CHECKING:
    from bento.application.ports.event_store import StoredEvent
    from bento.application.store_encoding import EncodedColumns

#: Turns the JSON dict of one schema version into the next version's dict.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

CONTENT_TYPE = "application/vnd.bento.envelope+json"
_FAST_PREFIX = b'{"type":"'
_METADATA_ONLY = {"metadata"}
_ENVELOPE_FIELDS = set(DomainEvent.ENVELOPE_FIELDS)


class MessageRegistry:
    """Wire name → message class, plus upcasters.

    Every defined (non-abstract) DomainEvent, Command or Query subclass is known without registration:
    the class tree is consulted on a miss and cached. `register` adds nothing new for
    such classes but lets a service list its types explicitly; `restrict_to` limits a
    registry to an allow-list.
    """

    def __init__(self, types: Iterable[type[DomainEvent]] = (), *, restrict_to_types: bool = False) -> None:
        self._types: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._restricted = restrict_to_types
        for cls in types:
            self.register(cls)

    def register(self, cls: type[DomainEvent]) -> type[DomainEvent]:
        existing = self._types.get(cls.__wire_name__)
        if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
            raise DuplicateMessageTypeError(cls.__wire_name__, existing.__qualname__, cls.__qualname__)
        self._types[cls.__wire_name__] = cls
        return cls

    def add_upcaster(self, wire_name: str, from_version: int, upcaster: Upcaster) -> None:
        """Register how to turn `wire_name` at `from_version` into `from_version + 1`."""
        self._upcasters[(wire_name, from_version)] = upcaster

    def upcaster(self, wire_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of `add_upcaster`."""

        def register(fn: Upcaster) -> Upcaster:
            self.add_upcaster(wire_name, from_version, fn)
            return fn

        return register

    def resolve(self, wire_name: str, *, message_id: str | None = None) -> type[DomainEvent]:
        cls = self._types.get(wire_name)
        if cls is not None:
            return cls
        if not self._restricted:
            # Commands, queries and replies resolve too (a remote CommandBus decodes them with
            # the same codec); they are typed as DomainEvent only because the transport port is.
            for candidate in concrete_message_types():
                if candidate.__wire_name__ == wire_name:
                    self._types[wire_name] = cast(type[DomainEvent], candidate)
                    return self._types[wire_name]
        raise UnknownMessageTypeError(wire_name, message_id=message_id, known=self.names())

    def resolve_known(self, wire_name: str) -> type[DomainEvent] | None:
        """`resolve` without the error: None for a name this registry does not know."""
        cls = self._types.get(wire_name)
        if cls is not None:
            return cls
        try:
            return self.resolve(wire_name)
        except UnknownMessageTypeError:
            return None

    def registered_types(self) -> list[type[DomainEvent]]:
        """The classes registered explicitly (or resolved so far), without the class tree."""
        return list(self._types.values())

    def names(self) -> list[str]:
        if self._restricted:
            return sorted(self._types)
        return sorted({*self._types, *(c.__wire_name__ for c in concrete_message_types())})

    def upcast(self, wire_name: str, version: int, data: dict[str, Any], target: int) -> dict[str, Any]:
        while version < target:
            step = self._upcasters.get((wire_name, version))
            if step is None:
                raise DeserializationError(
                    f"schema version {version} is older than {target} and no upcaster "
                    f"from version {version} is registered",
                    wire_name=wire_name,
                )
            data = step(data)
            version += 1
        if version > target:
            raise DeserializationError(
                f"schema version {version} is newer than this service's version {target}; "
                "deploy the newer event class first",
                wire_name=wire_name,
            )
        return data


@dataclass(slots=True)
class EncodedEvent:
    """The columns an event store keeps for one event. Not frozen: it is built per event
    on the append path, where a frozen dataclass's `__init__` cost 1.3 µs more per event;
    treat it as read-only (`dataclasses.replace` makes a changed copy)."""

    event_id: str
    event_type: str
    schema_version: int
    data: str
    metadata: str
    tenant_id: str
    correlation_id: str
    causation_id: str
    aggregate_type: str


class JsonCodec:
    """Encode and decode envelopes; shared by every transport and store adapter."""

    content_type = CONTENT_TYPE

    def __init__(self, registry: MessageRegistry | None = None) -> None:
        self.registry = registry if registry is not None else MessageRegistry()
        self._prefixes: dict[type[DomainEvent], bytes] = {}  # envelope head per class, built once

    # -- transport ------------------------------------------------------------------
    def encode_payload(self, message: DomainEvent) -> bytes:
        """The payload fields of `message` as JSON (CloudEvents `data`): no id, time or metadata."""
        try:
            return message.__pydantic_serializer__.to_json(message, exclude=_ENVELOPE_FIELDS)
        except PydanticSerializationError as exc:
            raise _unencodable(message, exc) from exc

    def encode(self, message: DomainEvent, headers: Mapping[str, str] | None = None) -> bytes:
        if headers:
            message = message.with_metadata(headers={**message.metadata.headers, **headers})
        cls = type(message)
        prefix = self._prefixes.get(cls)
        if prefix is None:
            prefix = self._prefixes[cls] = b'{"type":%s,"version":%d,"message":' % (
                json.dumps(cls.__wire_name__).encode(),
                cls.__schema_version__,
            )
        try:
            body = message.__pydantic_serializer__.to_json(message)
        except PydanticSerializationError as exc:
            raise _unencodable(message, exc) from exc
        return prefix + body + b"}"

    def decode(
        self,
        body: bytes | str,
        headers: Mapping[str, Any] | None = None,
        *,
        transport: Transport = None,
        message_type: type[DomainEvent] | None = None,
    ) -> DomainEvent:
        """The message in `body`, or DeserializationError: any failure while decoding (bad
        UTF-8, bad JSON, nesting too deep for the parser, an upcaster that raised) is one, so
        a consumer dead-letters the message instead of dying on an untyped error.

        Every format is accepted whatever the bus writes: a CloudEvent in binary mode (its
        `specversion` in `headers`), Bento's envelope, a structured CloudEvent, and, when the
        subscription names a `message_type`, a plain JSON object (wire.plain_fields)."""
        try:
            if headers:
                attributes = wire.binary_attributes(headers)
                if attributes is not None:
                    wire.require_json_data(attributes)
                    data = json.loads(_utf8_text(body)) if body else None
                    return self._decode_cloudevent(attributes, data, transport, message_type)
            if isinstance(body, bytes) and body.startswith(_FAST_PREFIX):
                decoded = self._decode_fast(body)
                if decoded is not None:
                    return decoded
            return self._decode_general(body, headers, transport, message_type)
        except DeserializationError:
            raise
        except RecursionError as exc:
            raise DeserializationError("body is nested too deeply to decode") from exc
        except Exception as exc:
            raise DeserializationError(f"{type(exc).__name__}: {exc}") from exc

    def _decode_general(
        self,
        body: bytes | str,
        headers: Mapping[str, Any] | None = None,
        transport: Transport = None,
        message_type: type[DomainEvent] | None = None,
    ) -> DomainEvent:
        text = _utf8_text(body)
        try:
            envelope = json.loads(text)
        except ValueError as exc:
            raise DeserializationError(f"body is not JSON ({exc})") from exc
        if "\\u" in text:
            _refuse_lone_surrogates(envelope)
        if not isinstance(envelope, dict):
            raise DeserializationError(f"envelope must be a JSON object, got {type(envelope).__name__}")
        if "specversion" in envelope:
            attributes = {k: v for k, v in envelope.items() if k != "data"}
            for name in (wire.TRACEPARENT, wire.TRACESTATE):  # the W3C headers, when the event has none
                if headers and name in headers and name not in attributes:
                    attributes[name] = wire.text(headers[name])
            if "data_base64" in envelope:
                raise DeserializationError("CloudEvent carries binary data (data_base64); Bento reads JSON data only")
            return self._decode_cloudevent(attributes, envelope.get("data"), transport, message_type)
        wire_name, version, data = envelope.get("type"), envelope.get("version", 1), envelope.get("message")
        if isinstance(wire_name, str) and isinstance(data, dict) and isinstance(version, int):
            return self._validate(wire_name, version, data)
        if message_type is not None:
            raw = body if isinstance(body, bytes) else text.encode()
            fields = wire.plain_fields(envelope, raw, headers, transport)
            return self._validate(message_type.__wire_name__, message_type.__schema_version__, fields, message_type)
        raise DeserializationError(
            "envelope needs 'type' (string), 'version' (int) and 'message' (object); a CloudEvent needs "
            "'specversion'; a plain JSON payload needs a subscription with message_type="
        )

    def _decode_cloudevent(
        self,
        attributes: Mapping[str, Any],
        data: object,
        transport: Transport,
        message_type: type[DomainEvent] | None,
    ) -> DomainEvent:
        wire_name = attributes.get("type")
        if not isinstance(wire_name, str):
            raise DeserializationError("CloudEvent needs a string 'type'")
        wire.require_json_data(attributes)
        fields = wire.cloudevent_fields(attributes, data, transport)
        cls, version = wire.cloudevent_class(self.registry, wire_name, attributes, fields["message_id"], message_type)
        return self._validate(wire_name, version, fields, cls)

    def _decode_fast(self, body: bytes) -> DomainEvent | None:
        """Envelopes as `encode` writes them, parsed by position: the message JSON goes
        straight to pydantic's validator, without building a dict first (about 3x
        faster). Anything unusual returns None and takes the general path, which also
        produces the precise errors."""
        type_end = body.find(b'","version":', len(_FAST_PREFIX))
        if type_end < 0 or not body.endswith(b"}"):
            return None
        wire_name = body[len(_FAST_PREFIX) : type_end]
        version_start = type_end + 12
        version_end = body.find(b',"message":', version_start)
        if version_end < 0 or b"\\" in wire_name:
            return None
        try:
            version = int(body[version_start:version_end])
            cls = self.registry.resolve(wire_name.decode())
        except (ValueError, UnknownMessageTypeError):
            return None
        if version != cls.__schema_version__:
            return None
        try:
            decoded: DomainEvent = cls.__pydantic_validator__.validate_json(body[version_end + 11 : -1])
        except ValidationError:
            return None
        return decoded

    @staticmethod
    def peek_type(body: bytes | str) -> str | None:
        """The wire name in an envelope, or None when it cannot be read (for routing and logs)."""
        try:
            value = json.loads(_utf8_text(body)).get("type")
        except Exception:
            return None
        return value if isinstance(value, str) else None

    # -- event store ----------------------------------------------------------------
    def encode_for_store(self, event: DomainEvent, *, aggregate_type: str = "") -> EncodedEvent:
        meta = event.metadata
        cls = type(event)
        # Two serializer calls, no dicts: the event without its metadata gives the id, the
        # timestamp and the payload (the envelope fields come first, in that order), and
        # the metadata its own JSON, which the timestamp joins at the front.
        try:
            head = event.__pydantic_serializer__.to_json(event, exclude=_METADATA_ONLY)
            meta_json = meta.__pydantic_serializer__.to_json(meta).decode()
        except PydanticSerializationError as exc:
            raise _unencodable(event, exc) from exc
        # `,"timestamp":"` cannot occur inside the id: a quote in a JSON string is escaped.
        start = head.find(b',"timestamp":"') + 14
        end = head.find(b'"', start)
        if start < 14 or end < 0 or not head.startswith(b'{"message_id":'):  # a custom serializer
            return self._encode_for_store_by_fields(event, meta_json, aggregate_type)
        timestamp = head[start:end].decode()
        data = "{" + head[end + 2 :].decode() if len(head) > end + 2 else "{}"
        return EncodedEvent(
            event.message_id,
            cls.__wire_name__,
            cls.__schema_version__,
            data,
            f'{{"timestamp":"{timestamp}",{meta_json[1:]}',
            meta.tenant_id or "",
            meta.correlation_id or event.message_id,
            meta.causation_id or "",
            aggregate_type or meta.aggregate_type or "",
        )

    def encode_many_for_store(self, events: Sequence[DomainEvent], *, aggregate_type: str = "") -> EncodedColumns:
        """`encode_for_store` of every event, as one list per column (application/store_encoding.py):
        what a column-wise store writes, without an `EncodedEvent` per event."""
        from bento.application.store_encoding import encode_store_columns

        return encode_store_columns(self, events, aggregate_type)

    def _encode_for_store_by_fields(self, event: DomainEvent, meta_json: str, aggregate_type: str) -> EncodedEvent:
        """`encode_for_store` for an event whose JSON does not start with the envelope fields."""
        meta = event.metadata
        try:
            data = event.__pydantic_serializer__.to_json(event, exclude=_ENVELOPE_FIELDS).decode()
        except PydanticSerializationError as exc:
            raise _unencodable(event, exc) from exc
        return EncodedEvent(
            event.message_id,
            type(event).__wire_name__,
            type(event).__schema_version__,
            data,
            f'{{"timestamp":"{event.timestamp.isoformat()}",{meta_json[1:]}',
            meta.tenant_id or "",
            meta.correlation_id or event.message_id,
            meta.causation_id or "",
            aggregate_type or meta.aggregate_type or "",
        )

    def decode_stored(
        self, event_id: str, event_type: str, schema_version: int, data: str, metadata: str
    ) -> DomainEvent:
        cls = self.registry.resolve_known(event_type)
        if cls is not None and schema_version == cls.__schema_version__:
            text = _stored_json(event_id, data, metadata)
            if text is not None:
                try:
                    decoded: DomainEvent = cls.__pydantic_validator__.validate_json(text)
                    return decoded
                except (ValidationError, ValueError, RecursionError):
                    pass  # the general path below produces the precise, typed error
        fields = _stored_message(event_id, event_type, data, metadata)
        try:
            return self._validate(event_type, schema_version, fields)
        except DeserializationError:
            raise
        except Exception as exc:
            raise DeserializationError(
                f"{type(exc).__name__}: {exc}", wire_name=event_type, message_id=event_id
            ) from exc

    def decode_stored_many(self, events: Sequence[StoredEvent]) -> list[DomainEvent]:
        """`decode_stored` of every event, in order, with the per-event overhead shared
        (application/stored_decoding.py): what aggregate loads and projections use."""
        from bento.application.stored_decoding import decode_stored_events

        return decode_stored_events(self, events)

    def decode_stored_columns(
        self,
        event_ids: Sequence[str],
        event_types: Sequence[str],
        schema_versions: Sequence[int],
        data: Sequence[str],
        metadata: Sequence[str],
    ) -> list[DomainEvent]:
        """`decode_stored_many` from the stored columns themselves (equal lengths), for a store
        that reads them column-wise: no StoredEvent is built."""
        from bento.application.stored_decoding import decode_stored_columns

        return decode_stored_columns(self, event_ids, event_types, schema_versions, data, metadata)

    def encode_stored(self, event_id: str, event_type: str, schema_version: int, data: str, metadata: str) -> bytes:
        """The wire envelope of a stored event, as `encode` would write it for the event, built
        from the stored columns without resolving the event class: the outbox relays events
        whose class this process does not have, and consumers upcast them."""
        message = _stored_message(event_id, event_type, data, metadata)
        envelope = {"type": event_type, "version": schema_version, "message": message}
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()

    def _validate(
        self, wire_name: str, version: int, data: dict[str, Any], cls: type[DomainEvent] | None = None
    ) -> DomainEvent:
        message_id = data.get("message_id") if isinstance(data.get("message_id"), str) else None
        if cls is None:
            cls = self.registry.resolve(wire_name, message_id=message_id)
        if version != cls.__schema_version__:
            data = self.registry.upcast(cls.__wire_name__, version, data, cls.__schema_version__)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise DeserializationError(
                f"payload does not match {cls.__qualname__} v{cls.__schema_version__}: "
                f"{exc.error_count()} error(s): {_summarise(exc)}",
                wire_name=wire_name,
                message_id=message_id,
            ) from exc


_TIMESTAMP_HEAD = '{"timestamp":"'
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]*")


def _stored_json(event_id: str, data: str, metadata: str) -> str | None:
    """The event's own JSON from the store's columns as `encode_for_store` writes them
    (payload object; metadata object whose first key is the timestamp), spliced as text
    so pydantic validates it in one pass without building dicts (about 3x faster than
    `_stored_message`). The envelope keys come after the payload's, so they win, as in
    `_stored_message`. None for anything else, which then takes the general path.

    Which of two equal keys a JSON parser keeps differs between pydantic-core versions (the
    oldest one Bento supports keeps the first), so a payload that names an envelope key
    anywhere takes the general path too: the envelope must win whatever the parser does."""
    if not (metadata.startswith(_TIMESTAMP_HEAD) and data.startswith("{") and data.endswith("}")):
        return None
    if '"message_id"' in data or '"timestamp"' in data or '"metadata"' in data:
        return None
    end = metadata.find('"', len(_TIMESTAMP_HEAD))
    if end < 0:
        return None
    timestamp = metadata[len(_TIMESTAMP_HEAD) : end]
    after = metadata[end + 1 : end + 2]
    if after == ",":
        meta = "{" + metadata[end + 2 :]
    elif after == "}":
        meta = "{}"
    else:
        return None
    quoted_id = f'"{event_id}"' if _PLAIN_ID.fullmatch(event_id) else json.dumps(event_id)
    head = "{" if data == "{}" else data[:-1] + ","
    return f'{head}"message_id":{quoted_id},"timestamp":"{timestamp}","metadata":{meta}}}'


def _stored_message(event_id: str, event_type: str, data: str, metadata: str) -> dict[str, Any]:
    """The envelope's `message` object from the store's columns: the payload, the id, and the
    metadata, whose `timestamp` (kept in the metadata column) becomes the message's own."""
    try:
        payload = json.loads(data)
        meta = json.loads(metadata)
        timestamp = meta.pop("timestamp", None)
        fields = {**payload, "message_id": event_id, "metadata": meta}
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise DeserializationError(
            f"stored JSON is corrupt ({type(exc).__name__}: {exc})", wire_name=event_type, message_id=event_id
        ) from exc
    if timestamp is not None:
        fields["timestamp"] = timestamp
    return fields


def _unencodable(message: DomainEvent, exc: PydanticSerializationError) -> SerializationError:
    return SerializationError(str(exc), wire_name=type(message).__wire_name__, message_id=message.message_id)


def _summarise(exc: ValidationError) -> str:
    """The first errors, each field path and message bounded: a path can hold an untrusted key."""
    parts = [
        f"{clipped('.'.join(str(p) for p in err['loc']), 120)}: {clipped(err['msg'], 200)}"
        for err in exc.errors(include_url=False, include_input=False)[:5]
    ]
    return "; ".join(parts)


def _utf8_text(body: bytes | str) -> str:
    """`body` as text, refusing anything that is not UTF-8 (the wire format). `json.loads(bytes)`
    alone would guess UTF-16/32 and let lone surrogates (b'\\xed\\xa0\\x80') through, which
    then reach handlers and fail when the event is encoded again."""
    try:
        if isinstance(body, str):
            body.encode("utf-8")
            return body
        return body.decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise DeserializationError(f"body is not valid UTF-8 ({exc.reason} at position {exc.start})") from exc


def _refuse_lone_surrogates(envelope: object) -> None:
    """JSON escapes can spell a lone surrogate (`\\ud800`) in pure ASCII; UTF-8 cannot carry
    one, and pydantic's own JSON parser refuses it, so the general path refuses it too."""
    try:
        json.dumps(envelope, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DeserializationError("body holds a lone UTF-16 surrogate escape, which is not Unicode text") from exc
