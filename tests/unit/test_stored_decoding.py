"""Decoding many stored events at once gives exactly what decoding them one by one does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import model_validator

from bento import DeserializationError, DomainEvent, JsonCodec, MessageRegistry, UnknownMessageTypeError
from bento.application.ports.event_store import StoredEvent
from bento.application.stored_decoding import shares_metadata
from bento.domain.metadata import MessageMetadata, current_message


class Moved(DomainEvent, name="test.batch.moved", version=2):
    to: str
    steps: int = 1


class Noted(DomainEvent, name="test.batch.noted"):
    note: str = ""


class Audited(DomainEvent, name="test.batch.audited"):
    """Its validation reads the metadata: it must never be decoded without it."""

    seen_tenant: str = ""

    @model_validator(mode="after")
    def _remember_tenant(self) -> Audited:
        object.__setattr__(self, "seen_tenant", self.metadata.tenant_id or "")
        return self


def _stored(codec: JsonCodec, events: list[DomainEvent]) -> list[StoredEvent]:
    out = []
    for n, event in enumerate(events, start=1):
        row = codec.encode_for_store(event)
        out.append(
            StoredEvent(
                n, "s", n, row.event_id, row.event_type, row.schema_version, row.data, row.metadata, datetime.now(UTC)
            )
        )
    return out


def _one_by_one(codec: JsonCodec, stored: list[StoredEvent]) -> list[DomainEvent]:
    return [codec.decode_stored(s.event_id, s.event_type, s.schema_version, s.data, s.metadata) for s in stored]


def _varied() -> list[DomainEvent]:
    shared = {"tenant_id": "t1", "correlation_id": "c1", "headers": {"k": '"v"'}}
    return [
        Moved(to="a").with_metadata(**shared),
        Moved(to='b "quoted" \\ ünï', steps=3).with_metadata(**shared),  # same metadata text: shared
        Noted(note="n", message_id='odd "id" \\'),  # an id that needs escaping
        Noted(),
        Audited(metadata=MessageMetadata(tenant_id="t2")),
        Moved(to="c", message_id="plain").with_metadata(trace_context={"traceparent": "00-x"}),
    ]


def test_a_batch_decodes_exactly_what_one_by_one_does() -> None:
    codec = JsonCodec()
    events = _varied()
    stored = _stored(codec, events)
    batch = codec.decode_stored_many(stored)
    assert batch == _one_by_one(codec, stored) == events
    assert [e.model_fields_set for e in batch] == [e.model_fields_set for e in _one_by_one(codec, stored)]
    assert [type(e) for e in batch] == [type(e) for e in events]
    assert batch[4].seen_tenant == "t2"  # type: ignore[attr-defined]
    columns = [
        [getattr(s, name) for s in stored] for name in ("event_id", "event_type", "schema_version", "data", "metadata")
    ]
    assert codec.decode_stored_columns(*columns) == events


def test_events_of_one_metadata_share_one_frozen_object_and_trusted_classes_are_chosen_carefully() -> None:
    codec = JsonCodec()
    batch = codec.decode_stored_many(_stored(codec, _varied()))
    assert batch[0].metadata is batch[1].metadata
    assert shares_metadata(Moved) and not shares_metadata(Audited)


def test_decoding_inside_a_handler_keeps_the_stored_metadata_and_the_context() -> None:
    codec = JsonCodec()
    events = _varied()
    stored = _stored(codec, events)
    running = Noted(note="the running handler's message").with_metadata(tenant_id="other")
    token = current_message.set(running)
    try:
        assert codec.decode_stored_many(stored) == events
        assert current_message.get() is running
    finally:
        current_message.reset(token)


def test_older_versions_are_upcast_and_payloads_naming_envelope_keys_take_the_general_path() -> None:
    registry = MessageRegistry()
    registry.add_upcaster("test.batch.moved", 1, lambda d: {"to" if k == "where" else k: v for k, v in d.items()})
    codec = JsonCodec(registry)
    event = Moved(to="x", message_id="m1")
    (row,) = _stored(codec, [event])
    old = StoredEvent(1, "s", 1, "m1", row.event_type, 1, '{"where":"x","steps":1}', row.metadata, row.recorded_at)
    forged = StoredEvent(
        2, "s", 2, "m1", row.event_type, 2, row.data[:-1] + ',"message_id":"forged"}', row.metadata, row.recorded_at
    )
    assert codec.decode_stored_many([old, forged]) == [event, event]


@pytest.mark.parametrize(
    ("change", "error", "text"),
    [
        ({"data": '{"to":"a","steps":"many"}'}, DeserializationError, "steps"),
        ({"data": '{"to":"a"'}, DeserializationError, "corrupt"),
        ({"metadata": '{"timestamp":"2020-01-01T00:00:00Z","tenant_id":5}'}, DeserializationError, "tenant_id"),
        ({"event_type": "test.batch.gone"}, UnknownMessageTypeError, "test.batch.gone"),
    ],
)
def test_the_first_bad_event_raises_the_precise_typed_error(
    change: dict[str, Any], error: type[Exception], text: str
) -> None:
    codec = JsonCodec()
    good, bad, later = _stored(codec, [Moved(to="a"), Moved(to="b"), Moved(to="c")])
    fields = {name: getattr(bad, name) for name in bad.__dataclass_fields__} | change
    with pytest.raises(error) as caught:
        codec.decode_stored_many([good, StoredEvent(**fields), later])
    assert text in str(caught.value)
