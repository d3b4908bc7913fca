import json
from typing import Any

import pytest
from pydantic import model_serializer

from bento import DeserializationError, DomainEvent, JsonCodec, MessageRegistry, UnknownMessageTypeError


class PriceChanged(DomainEvent, name="test.codec.price_changed", version=3):
    sku: str
    cents: int


def test_round_trip_keeps_every_field() -> None:
    codec = JsonCodec()
    event = PriceChanged(sku="A", cents=100).with_metadata(tenant_id="t", headers={"h": "v"})
    body = codec.encode(event, {"extra": "1"})
    decoded = codec.decode(body)
    assert decoded.model_dump(exclude={"metadata"}) == event.model_dump(exclude={"metadata"})
    assert decoded.metadata.headers == {"h": "v", "extra": "1"}
    envelope = json.loads(body)
    assert envelope["type"] == "test.codec.price_changed" and envelope["version"] == 3


@pytest.mark.parametrize(
    ("body", "error", "text"),
    [
        (b"{not json", DeserializationError, "not JSON"),
        (b"[1,2]", DeserializationError, "JSON object"),
        (b'{"type": 5, "message": {}}', DeserializationError, "'type'"),
        (b'{"type":"test.codec.nope","version":1,"message":{}}', UnknownMessageTypeError, "test.codec.nope"),
        (b'{"type":"test.codec.price_changed","version":3,"message":{"sku":"A"}}', DeserializationError, "cents"),
    ],
)
def test_bad_bodies_raise_typed_errors_that_say_why(body: bytes, error: type[Exception], text: str) -> None:
    with pytest.raises(error) as caught:
        JsonCodec().decode(body)
    assert text in str(caught.value)


def test_unknown_type_error_carries_the_wire_name_and_id() -> None:
    body = b'{"type":"test.codec.gone","version":1,"message":{"message_id":"m-1"}}'
    with pytest.raises(UnknownMessageTypeError) as caught:
        JsonCodec().decode(body)
    assert caught.value.wire_name == "test.codec.gone" and caught.value.message_id == "m-1"


def test_upcasters_bring_old_versions_to_the_current_one() -> None:
    registry = MessageRegistry()

    @registry.upcaster("test.codec.price_changed", 1)
    def v1_to_v2(data: dict) -> dict:  # type: ignore[type-arg]
        data["cents"] = int(data.pop("price") * 100)
        return data

    registry.add_upcaster("test.codec.price_changed", 2, lambda data: data)
    codec = JsonCodec(registry)
    old = b'{"type":"test.codec.price_changed","version":1,"message":{"sku":"A","price":1.5}}'
    event = codec.decode(old)
    assert isinstance(event, PriceChanged) and event.cents == 150


def test_missing_upcaster_and_future_versions_are_errors() -> None:
    codec = JsonCodec()
    with pytest.raises(DeserializationError, match="no upcaster"):
        codec.decode(b'{"type":"test.codec.price_changed","version":1,"message":{"sku":"A","cents":1}}')
    with pytest.raises(DeserializationError, match="newer"):
        codec.decode(b'{"type":"test.codec.price_changed","version":9,"message":{"sku":"A","cents":1}}')


def test_restricted_registry_resolves_only_registered_names() -> None:
    codec = JsonCodec(MessageRegistry(restrict_to_types=True))
    with pytest.raises(UnknownMessageTypeError):
        codec.decode(JsonCodec().encode(PriceChanged(sku="A", cents=1)))
    codec.registry.register(PriceChanged)
    assert isinstance(codec.decode(JsonCodec().encode(PriceChanged(sku="A", cents=1))), PriceChanged)


def test_store_encoding_round_trips() -> None:
    codec = JsonCodec()
    event = PriceChanged(sku="A", cents=1).with_metadata(correlation_id="c", causation_id="x", tenant_id="t")
    row = codec.encode_for_store(event, aggregate_type="Product")
    assert (row.correlation_id, row.causation_id, row.tenant_id, row.aggregate_type) == ("c", "x", "t", "Product")
    back = codec.decode_stored(row.event_id, row.event_type, row.schema_version, row.data, row.metadata)
    assert back == event


def test_stored_metadata_puts_the_ids_before_any_nested_object() -> None:
    # The ClickHouse store reads tenant/correlation/causation ids with
    # visitParamExtractString, which takes the FIRST key of that name at any depth.
    codec = JsonCodec()
    decoy = {"tenant_id": "h", "correlation_id": "h", "causation_id": "h"}
    event = PriceChanged(sku="A", cents=1).with_metadata(headers=decoy, trace_context=decoy)
    metadata = codec.encode_for_store(event).metadata
    nested = min(metadata.index('"headers"'), metadata.index('"trace_context"'))
    for key in ("tenant_id", "correlation_id", "causation_id"):
        assert metadata.index(f'"{key}":') < nested


def test_an_unencodable_field_is_a_typed_error_naming_the_message() -> None:
    from typing import Any

    from bento.application.errors import SerializationError

    class HoldsAnything(DomainEvent):
        __wire_name__ = "test.holds_anything"
        value: Any = None

    event = HoldsAnything(value=object())
    codec = JsonCodec()
    for encode in (codec.encode, codec.encode_for_store):
        with pytest.raises(SerializationError) as caught:
            encode(event)
        assert caught.value.wire_name == "test.holds_anything" and caught.value.message_id == event.message_id
        assert "test.holds_anything" in str(caught.value) and "object" in str(caught.value)


def test_fast_and_general_decoding_agree() -> None:
    codec = JsonCodec()
    event = PriceChanged(sku='ü"x', cents=7).with_metadata(headers={"k": "v"})
    body = codec.encode(event)
    assert codec._decode_fast(body) == event  # what encode writes takes the fast path
    spaced = json.dumps(json.loads(body), indent=1).encode()  # any other layout: the general path
    assert codec._decode_fast(spaced) is None
    assert codec.decode(spaced) == codec.decode(body) == event


def test_fast_path_never_accepts_a_truncated_body() -> None:
    body = JsonCodec().encode(PriceChanged(sku="A", cents=1))
    with pytest.raises(DeserializationError):
        JsonCodec().decode(body[:-2] + b"}")


_NESTED = b'{"type":"test.codec.price_changed","version":3,"message":{"sku":' + b"[" * 5000 + b"]" * 5000 + b"}}"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (_NESTED, "nested too deeply"),
        (b'{"type":"test.codec.price_changed","version":3,"message":{"sku":"B\xed\xa0\x80D","cents":1}}', "UTF-8"),
        (b'{"type":"test.codec.price_changed","version":3,"message":{"sku":"B\\ud800D","cents":1}}', "surrogate"),
        ('{"type":"test.codec.price_changed","version":3,"message":{"sku":"B\ud800D","cents":1}}', "UTF-8"),
        ('{"a": 1}'.encode("utf-16"), "UTF-8"),
    ],
)
def test_every_decoding_failure_is_a_deserialization_error(body: bytes | str, text: str) -> None:
    """Deep nesting used to escape as RecursionError, and lone surrogates were accepted."""
    with pytest.raises(DeserializationError) as caught:
        JsonCodec().decode(body)
    assert text in str(caught.value)
    assert JsonCodec.peek_type(body) is None or "\ud800" not in str(JsonCodec.peek_type(body))


def test_valid_utf8_and_surrogate_pairs_still_decode() -> None:
    body = '{"type":"test.codec.price_changed","version":3,"message":{"sku":"ü\\ud83d\\ude00😀","cents":1}}'
    decoded = JsonCodec().decode(body.encode())
    assert isinstance(decoded, PriceChanged) and decoded.sku == "ü😀😀"


def test_an_upcaster_that_raises_is_a_deserialization_error() -> None:
    class Renamed(DomainEvent, name="test.codec.renamed", version=2):
        title: str

    registry = MessageRegistry()
    registry.add_upcaster("test.codec.renamed", 1, lambda data: {**data, "title": data["name"]})
    with pytest.raises(DeserializationError) as caught:
        JsonCodec(registry).decode(b'{"type":"test.codec.renamed","version":1,"message":{}}')
    assert "KeyError" in str(caught.value)


def test_errors_quote_a_bounded_prefix_of_untrusted_input() -> None:
    """A 50 MB wire name once produced a 104-million-character error message."""
    huge = "n" * 5_000_000
    with pytest.raises(UnknownMessageTypeError) as caught:
        JsonCodec().decode(json.dumps({"type": huge, "version": 1, "message": {"message_id": huge}}).encode())
    assert len(str(caught.value)) < 1500 and "5000000 characters" in str(caught.value)
    extra_key = {"sku": "A", "cents": 1, "k" * 1_000_000: 1}
    with pytest.raises(DeserializationError) as invalid:
        JsonCodec().decode(json.dumps({"type": "test.codec.price_changed", "version": 3, "message": extra_key}))
    assert len(str(invalid.value)) < 1500
    with pytest.raises(DeserializationError) as stored:
        JsonCodec().decode_stored("e-1", huge, 1, "[" * 5000 + "]" * 5000, "{}")
    assert len(str(stored.value)) < 1500


class Blank(DomainEvent, name="test.codec.blank"):
    pass


@pytest.mark.parametrize("event_id", ["plain-id", 'quoted "id" \\ ünï'])
def test_the_stored_fast_path_decodes_exactly_what_the_general_path_does(event_id: str) -> None:
    codec = JsonCodec()
    for event in (
        PriceChanged(sku='a "b"', cents=7, message_id=event_id).with_metadata(headers={"k": '"v"'}),
        Blank(message_id=event_id),
    ):
        row = codec.encode_for_store(event)
        assert codec.decode_stored(event_id, row.event_type, row.schema_version, row.data, row.metadata) == event


def test_stored_envelope_keys_win_over_a_payload_that_repeats_them() -> None:
    codec = JsonCodec()
    row = codec.encode_for_store(PriceChanged(sku="A", cents=1, message_id="real"))
    data = row.data[:-1] + ',"message_id":"forged"}'
    back = codec.decode_stored("real", row.event_type, row.schema_version, data, row.metadata)
    assert back.message_id == "real"


@pytest.mark.parametrize(
    ("data", "metadata", "text"),
    [
        ('{"sku":"A"}', None, "cents"),
        ('{"sku":"A","cents":1', None, "corrupt"),
        ('{"sku":"A","cents":1}', '{"timestamp":"2020-01-01T00:00:00+00:00",', "corrupt"),
    ],
)
def test_a_bad_stored_row_is_a_typed_error(data: str, metadata: str | None, text: str) -> None:
    codec = JsonCodec()
    row = codec.encode_for_store(PriceChanged(sku="A", cents=1))
    with pytest.raises(DeserializationError) as caught:
        codec.decode_stored(row.event_id, row.event_type, row.schema_version, data, metadata or row.metadata)
    assert text in str(caught.value)


class ReversedFields(DomainEvent, name="test.codec.reversed"):
    """Serialises its payload first: the store encoding must take the general path."""

    note: str = ""

    @model_serializer(mode="wrap")
    def _payload_first(self, handler: Any) -> dict[str, Any]:
        fields = handler(self)
        return {"note": fields.pop("note", ""), **fields}


class Nested(DomainEvent, name="test.codec.nested"):
    items: list[dict[str, str]] = []


def test_encoding_many_for_the_store_gives_what_encoding_each_does() -> None:
    from bento.application.serialization import EncodedEvent

    codec = JsonCodec()
    events: list[DomainEvent] = [
        PriceChanged(sku='a "b" ünï', cents=7).with_metadata(tenant_id="t", correlation_id="c", headers={"k": "v"}),
        Blank(message_id='odd "id"'),
        ReversedFields(note="n").with_metadata(aggregate_type="Mine", causation_id="x"),
    ]
    # Runs of one class are encoded by list (two serializer calls cut apart), short ones one by one.
    events += [PriceChanged(sku=str(n) + ' "},{\\"message_id\\":', cents=n) for n in range(6)]
    events += [Blank(message_id=f"id-{n}").with_metadata(headers={"},{": '"},{"correlation_id":'}) for n in range(5)]
    events += [Nested(items=[{"message_id": "x"}, {"message_id": "y"}]) for _ in range(5)]  # cut marks inside
    for aggregate_type in ("", "Order"):
        columns = codec.encode_many_for_store(events, aggregate_type=aggregate_type)
        one_by_one = [codec.encode_for_store(e, aggregate_type=aggregate_type) for e in events]
        names = list(EncodedEvent.__dataclass_fields__)
        assert len(columns) == len(events)
        assert [EncodedEvent(*(getattr(columns, n)[i] for n in names)) for i in range(len(events))] == one_by_one


def test_encoding_many_uses_a_codec_that_overrides_encode_for_store() -> None:
    import dataclasses

    from bento.application.serialization import EncodedEvent

    class Marking(JsonCodec):
        def encode_for_store(self, event: DomainEvent, *, aggregate_type: str = "") -> EncodedEvent:
            return dataclasses.replace(super().encode_for_store(event, aggregate_type=aggregate_type), schema_version=9)

    assert Marking().encode_many_for_store([Blank(), Blank()]).schema_version == [9, 9]


def test_encoding_many_refuses_an_unencodable_event_with_a_typed_error() -> None:
    from bento import SerializationError

    class Holder(DomainEvent, name="test.codec.holder"):
        value: Any = None

    with pytest.raises(SerializationError) as caught:
        JsonCodec().encode_many_for_store([Blank(), Holder(value=object(), message_id="bad-1")])
    with pytest.raises(SerializationError) as in_a_run:
        JsonCodec().encode_many_for_store([Holder(), Holder(), Holder(value=object(), message_id="bad-2"), Holder()])
    assert in_a_run.value.message_id == "bad-2"
    assert caught.value.message_id == "bad-1"
