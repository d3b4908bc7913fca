"""Decoding many stored events at once: aggregate loads and projection batches.

`JsonCodec.decode_stored` handles one event; loading a 10,000-event aggregate calls it
10,000 times, and the Python around each pydantic call (class look-up, building the
event's JSON, the metadata's validation) cost as much as the validation itself. Here the
same result comes cheaper, event by event in stream order:

* the event's JSON is spliced from the stored columns with a few string operations
  (rows written by `encode_for_store`: payload object, metadata object whose first key is
  the timestamp); anything else takes `decode_stored`'s general path;
* the metadata is validated once per distinct metadata text of the batch and the one
  frozen `MessageMetadata` is shared by the events that carry it (events recorded by one
  command carry the same metadata). This "trusted" step is used only for classes whose
  validation cannot look at the metadata: no model or field validators, no
  `model_post_init`, and the base class's `metadata` field. Other classes validate the
  whole JSON, metadata included, as `decode_stored` does;
* any failure (a payload that does not validate, corrupt metadata, an older schema
  version that needs upcasting, an unknown type) goes to `decode_stored` for that event,
  which upcasts, or raises its precise typed error. Errors surface in stream order.

The result equals `[codec.decode_stored(...) for each event]`; a unit test compares them.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bento.application.ports.event_store import StoredEvent
from bento.domain.events import DomainEvent
from bento.domain.metadata import MessageMetadata, current_message

if TYPE_CHECKING:
    from bento.application.serialization import JsonCodec

_TIMESTAMP_HEAD = '{"timestamp":"'
_HEAD = len(_TIMESTAMP_HEAD)
_DECODE_ERRORS = (ValidationError, ValueError, RecursionError)

#: The stored columns decoding needs: event_id, event_type, schema_version, data, metadata.
StoredRow = tuple[str, str, int, str, str]


@functools.cache
def shares_metadata(cls: type[DomainEvent]) -> bool:
    """Whether an event of `cls` may be validated without its metadata, which is then set
    afterwards (module docstring): nothing in its validation can read the metadata."""
    decorators = cls.__pydantic_decorators__
    field = cls.model_fields.get("metadata")
    return (
        not decorators.model_validators
        and not decorators.field_validators
        and not decorators.root_validators
        and cls.__pydantic_post_init__ is None
        and field is not None
        and field.annotation is MessageMetadata
        and not field.metadata
    )


def decode_stored_events(codec: JsonCodec, events: Sequence[StoredEvent]) -> list[DomainEvent]:
    """`[codec.decode_stored(...) for e in events]`, faster (module docstring)."""
    return decode_stored_columns(
        codec,
        [e.event_id for e in events],
        [e.event_type for e in events],
        [e.schema_version for e in events],
        [e.data for e in events],
        [e.metadata for e in events],
    )


def decode_stored_columns(
    codec: JsonCodec,
    event_ids: Sequence[str],
    event_types: Sequence[str],
    schema_versions: Sequence[int],
    data: Sequence[str],
    metadata: Sequence[str],
) -> list[DomainEvent]:
    """`decode_stored_events` from the stored columns themselves: a store that reads them
    column-wise builds no StoredEvent at all. The checks that do not depend on one event
    (no payload names an envelope key, no id needs escaping) run once over the joined
    column, at C speed; only when one fails does every event get checked on its own."""
    joined_data, joined_ids = "\x00".join(data), "".join(event_ids)
    clean = (
        '"message_id"' not in joined_data
        and '"timestamp"' not in joined_data
        and '"metadata"' not in joined_data
        and _plain_id(joined_ids)
    )
    return _decode(codec, zip(event_ids, event_types, schema_versions, data, metadata, strict=True), clean)


def _plain_id(event_id: str) -> bool:
    """Needs no JSON escaping: no quote, backslash or control character."""
    return event_id.isprintable() and '"' not in event_id and "\\" not in event_id


def _decode(codec: JsonCodec, rows: Iterable[StoredRow], clean: bool) -> list[DomainEvent]:
    """The loop of `decode_stored_columns`, kept flat on purpose: at 10,000 events every
    call and look-up per event shows. `clean` says the per-event key and id checks passed
    for the whole batch already."""
    out: list[DomainEvent] = []
    append = out.append
    # (event type, schema version) -> (validator, shares metadata), or None: general path.
    classes: dict[tuple[str, int], tuple[Callable[[str], Any], bool] | None] = {}
    last_type, last_version, fast = "", -1, None
    shared: dict[str, MessageMetadata] = {}
    validate_metadata = MessageMetadata.__pydantic_validator__.validate_json
    # Validated without metadata, an event gets the field's default first: outside any
    # handler that is one shared empty object, not a copy of the running message's metadata.
    token = current_message.set(None)
    # Every object made here survives the loop: the cyclic collector, triggered by the
    # allocations, would traverse them again and again for nothing (15-20 % of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for event_id, event_type, schema_version, data, metadata in rows:
            if event_type != last_type or schema_version != last_version:
                key = last_type, last_version = event_type, schema_version
                fast = classes.get(key, _UNSEEN)
                if fast is _UNSEEN:
                    fast = classes[key] = _fast_class(codec, event_type, schema_version)
            event: DomainEvent | None = None
            if (
                fast is not None
                and metadata.startswith(_TIMESTAMP_HEAD)
                and data.startswith("{")
                and data.endswith("}")
                # Which of two equal keys a parser keeps varies; the envelope's must win.
                and (
                    clean
                    or (
                        '"message_id"' not in data
                        and '"timestamp"' not in data
                        and '"metadata"' not in data
                        and _plain_id(event_id)
                    )
                )
            ):
                end = metadata.find('"', _HEAD)
                after = metadata[end + 1 : end + 2] if end > 0 else ""
                if after == "," or after == "}":
                    validate, share = fast
                    stamp = metadata[_HEAD:end]
                    # The payload's fields, then the envelope's ("{}" has none).
                    head = data[:-1] + "," if len(data) > 2 else "{"
                    try:
                        if share:
                            meta_key = metadata[end + 2 :] if after == "," else ""
                            meta = shared.get(meta_key)
                            if meta is None:
                                meta = shared[meta_key] = validate_metadata("{" + meta_key if meta_key else "{}")
                            event = validate(f'{head}"message_id":"{event_id}","timestamp":"{stamp}"}}')
                            # Frozen models keep fields in __dict__: the validated metadata replaces the default.
                            event.__dict__["metadata"] = meta
                            event.__pydantic_fields_set__.add("metadata")
                        else:
                            meta_text = "{" + metadata[end + 2 :] if after == "," else "{}"
                            event = validate(
                                f'{head}"message_id":"{event_id}","timestamp":"{stamp}","metadata":{meta_text}}}'
                            )
                    except _DECODE_ERRORS:
                        event = None
            if event is None:
                event = codec.decode_stored(event_id, event_type, schema_version, data, metadata)
            append(event)
    finally:
        if collecting:
            gc.enable()
        current_message.reset(token)
    return out


_UNSEEN: Any = object()


def _fast_class(codec: JsonCodec, event_type: str, schema_version: int) -> tuple[Callable[[str], Any], bool] | None:
    cls = codec.registry.resolve_known(event_type)
    if cls is None or cls.__schema_version__ != schema_version:
        return None
    return cls.__pydantic_validator__.validate_json, shares_metadata(cls)
