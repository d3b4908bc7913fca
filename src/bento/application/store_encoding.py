"""Encoding many events for an event store at once, straight into columns.

`JsonCodec.encode_for_store` returns one `EncodedEvent` per event; a store that writes
column-wise (ClickHouse's group commit) then reads every attribute back out. At
100,000 events a second that object and the per-call look-ups cost as much as the two
pydantic serializer calls themselves, so `encode_store_columns` appends the same values
to one list per column instead, in one loop. The values are exactly what
`encode_for_store` produces (a unit test compares them); events whose JSON does not
start with the envelope fields, and codecs that override `encode_for_store`, go through
`encode_for_store` itself.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError

from bento.domain.events import DomainEvent
from bento.domain.metadata import MessageMetadata

if TYPE_CHECKING:
    from bento.application.serialization import EncodedEvent, JsonCodec

_METADATA_ONLY = {"metadata"}
_TIMESTAMP_KEY = b',"timestamp":"'
_HEAD = b'{"message_id":'


@dataclass(slots=True)
class EncodedColumns:
    """`EncodedEvent`'s fields for many events, one list per field, in event order."""

    event_id: list[str] = field(default_factory=list)
    event_type: list[str] = field(default_factory=list)
    schema_version: list[int] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    tenant_id: list[str] = field(default_factory=list)
    correlation_id: list[str] = field(default_factory=list)
    causation_id: list[str] = field(default_factory=list)
    aggregate_type: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.event_id)

    def add(self, encoded: EncodedEvent) -> None:
        self.event_id.append(encoded.event_id)
        self.event_type.append(encoded.event_type)
        self.schema_version.append(encoded.schema_version)
        self.data.append(encoded.data)
        self.metadata.append(encoded.metadata)
        self.tenant_id.append(encoded.tenant_id)
        self.correlation_id.append(encoded.correlation_id)
        self.causation_id.append(encoded.causation_id)
        self.aggregate_type.append(encoded.aggregate_type)

    def extend(self, other: EncodedColumns) -> None:
        self.event_id += other.event_id
        self.event_type += other.event_type
        self.schema_version += other.schema_version
        self.data += other.data
        self.metadata += other.metadata
        self.tenant_id += other.tenant_id
        self.correlation_id += other.correlation_id
        self.causation_id += other.causation_id
        self.aggregate_type += other.aggregate_type


def encode_store_columns(codec: JsonCodec, events: Sequence[DomainEvent], aggregate_type: str) -> EncodedColumns:
    """`encode_for_store` of every event, as columns (module docstring)."""
    from bento.application.serialization import JsonCodec

    columns = EncodedColumns()
    if type(codec).encode_for_store is not JsonCodec.encode_for_store:  # a codec that changes rows
        for event in events:
            columns.add(codec.encode_for_store(event, aggregate_type=aggregate_type))
        return columns
    start = 0
    while start < len(events):  # runs of one class: each run is serialised in two calls
        cls = type(events[start])
        end = start + 1
        while end < len(events) and type(events[end]) is cls:
            end += 1
        run = events[start:end]
        if len(run) < _MIN_RUN or not _encode_run(columns, cls, run, aggregate_type):
            for event in run:
                _encode_one(codec, columns, event, aggregate_type)
        start = end
    return columns


#: Runs shorter than this are encoded event by event (two list dumps cost more for one).
_MIN_RUN = 4
_EVENTS_OPEN = b'[{"message_id":'
_EVENTS_SPLIT = b'},{"message_id":'
_META_OPEN = b'[{"correlation_id":'
_META_SPLIT = b'},{"correlation_id":'
_EXCLUDE_METADATA = {"__all__": {"metadata"}}


@functools.cache
def _list_adapter(cls: type[Any]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[cls])  # type: ignore[valid-type]


def _encode_run(
    columns: EncodedColumns, cls: type[DomainEvent], run: Sequence[DomainEvent], aggregate_type: str
) -> bool:
    """Encode `run` (events of one class) with one serializer call for the events and one
    for their metadata, then cut both JSON arrays at their element boundaries. The cut
    marks cannot occur inside a JSON string (its quotes would be escaped), so they occur
    only between elements, or inside a payload that nests objects with a `message_id`
    key in a list: then the pieces do not add up and False sends the run down the
    event-by-event path. Metadata has a fixed shape without lists, so its cut is exact
    for the base class; a subclass also takes the other path."""
    metas = [event.metadata for event in run]
    if any(type(meta) is not MessageMetadata for meta in metas):
        return False
    try:
        heads = _list_adapter(cls).dump_json(list(run), exclude=_EXCLUDE_METADATA)
        meta_json = _list_adapter(MessageMetadata).dump_json(metas)
    except PydanticSerializationError:
        return False  # the event-by-event path raises the typed error for the right event
    if not (heads.startswith(_EVENTS_OPEN) and meta_json.startswith(_META_OPEN)):
        return False
    pieces = heads[len(_EVENTS_OPEN) : -2].split(_EVENTS_SPLIT)
    meta_pieces = meta_json[len(_META_OPEN) : -2].decode().split(_META_SPLIT.decode())
    if len(pieces) != len(run) or len(meta_pieces) != len(run):
        return False
    data: list[str] = []
    metadata: list[str] = []
    for piece, meta_piece in zip(pieces, meta_pieces, strict=True):
        # piece: "<id>","timestamp":"<time>"[,<payload fields>]
        at = piece.find(_TIMESTAMP_KEY)
        if at < 0:
            return False
        close = piece.find(b'"', at + 14)
        data.append("{" + piece[close + 2 :].decode() + "}" if len(piece) > close + 1 else "{}")
        metadata.append(f'{{"timestamp":"{piece[at + 14 : close].decode()}","correlation_id":{meta_piece}}}')
    wire_name, version = cls.__wire_name__, cls.__schema_version__
    ids = [event.message_id for event in run]
    columns.event_id += ids
    columns.event_type += [wire_name] * len(run)
    columns.schema_version += [version] * len(run)
    columns.data += data
    columns.metadata += metadata
    columns.tenant_id += [meta.tenant_id or "" for meta in metas]
    columns.correlation_id += [meta.correlation_id or id for meta, id in zip(metas, ids, strict=True)]
    columns.causation_id += [meta.causation_id or "" for meta in metas]
    columns.aggregate_type += [aggregate_type or meta.aggregate_type or "" for meta in metas]
    return True


def _encode_one(codec: JsonCodec, columns: EncodedColumns, event: DomainEvent, aggregate_type: str) -> None:
    from bento.application.serialization import _unencodable

    meta = event.metadata
    try:
        head = event.__pydantic_serializer__.to_json(event, exclude=_METADATA_ONLY)
        meta_json = meta.__pydantic_serializer__.to_json(meta).decode()
    except PydanticSerializationError as exc:
        raise _unencodable(event, exc) from exc
    start = head.find(_TIMESTAMP_KEY) + 14
    end = head.find(b'"', start)
    if start < 14 or end < 0 or not head.startswith(_HEAD):  # a custom serializer: the general path
        columns.add(codec.encode_for_store(event, aggregate_type=aggregate_type))
        return
    cls = type(event)
    columns.event_id.append(event.message_id)
    columns.event_type.append(cls.__wire_name__)
    columns.schema_version.append(cls.__schema_version__)
    columns.data.append("{" + head[end + 2 :].decode() if len(head) > end + 2 else "{}")
    columns.metadata.append(f'{{"timestamp":"{head[start:end].decode()}",{meta_json[1:]}')
    columns.tenant_id.append(meta.tenant_id or "")
    columns.correlation_id.append(meta.correlation_id or event.message_id)
    columns.causation_id.append(meta.causation_id or "")
    columns.aggregate_type.append(aggregate_type or meta.aggregate_type or "")
