"""The wire formats (docs/wire-format.md): Bento's envelope with metadata headers, CloudEvents
in binary and structured mode under each binding's spelling, and plain foreign payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from bento.adapters.memory import InProcessMessageBus, InProcessSettings
from bento.adapters.shared.wire_headers import AMQP, KAFKA, NATS, PULSAR, REDIS, WireEncoder
from bento.application.errors import DeserializationError, UnknownMessageTypeError
from bento.application.serialization import JsonCodec, MessageRegistry
from bento.application.wire import HeaderStyle, TransportFacts, WireFormat
from bento.domain.events import DomainEvent
from bento.schemas import load
from bento.testing.collector import Collector
from bento.testing.events import ContractEvent, make_event

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
STYLES = [AMQP, KAFKA, NATS, PULSAR, REDIS]


def _event() -> ContractEvent:
    return make_event(5, key="k-5", blob="ü").with_metadata(
        correlation_id="corr", causation_id="cause", tenant_id="acme", trace_context={"traceparent": TRACEPARENT}
    )


def _encoder(fmt: str, style: HeaderStyle) -> WireEncoder:
    return WireEncoder(JsonCodec(), InProcessSettings(wire_format=fmt, cloudevents_source="orders"), style)


def test_bento_format_keeps_the_body_and_adds_metadata_headers() -> None:
    event, codec = _event(), JsonCodec()
    body, headers = _encoder("bento", KAFKA).encode(event, {"x-origin": "t"})
    assert body == codec.encode(event, {"x-origin": "t"})
    jsonschema.validate(json.loads(body), load("envelope"))
    assert headers == {
        "x-bento-message-id": event.message_id,
        "x-bento-type": "bento.testing.contract_event",
        "x-bento-version": "1",
        "x-bento-timestamp": json.loads(body)["message"]["timestamp"],  # RFC 3339, as in the body
        "x-bento-correlation-id": "corr",
        "x-bento-causation-id": "cause",
        "x-bento-tenant-id": "acme",
        "traceparent": TRACEPARENT,
        "x-origin": "t",
    }


@pytest.mark.parametrize("style", STYLES, ids=lambda s: s.ce_prefix)
def test_binary_mode_puts_attributes_in_headers_and_the_payload_in_the_body(style: HeaderStyle) -> None:
    event = _event()
    body, headers = _encoder("cloudevents-binary", style).encode(event)
    assert json.loads(body) == {"seq": 5, "key": "k-5", "blob": "ü"}
    p = style.ce_prefix
    assert headers[p + "specversion"] == "1.0"
    assert headers[p + "id"] == event.message_id
    assert headers[p + "type"] == "bento.testing.contract_event"
    assert headers[p + "source"] == "orders"
    assert headers[p + "time"] == event.timestamp.isoformat()
    assert (headers[p + "correlationid"], headers[p + "causationid"], headers[p + "tenantid"]) == (
        "corr",
        "cause",
        "acme",
    )
    assert headers[p + "partitionkey"] == "k-5"
    assert headers["traceparent"] == TRACEPARENT
    assert JsonCodec().decode(body, headers) == event


@pytest.mark.parametrize("style", STYLES, ids=lambda s: s.ce_prefix)
def test_structured_mode_is_one_cloudevent_json_object(style: HeaderStyle) -> None:
    event = _event()
    body, headers = _encoder("cloudevents-structured", style).encode(event)
    document = json.loads(body)
    assert document["specversion"] == "1.0" and document["id"] == event.message_id
    assert document["data"] == {"seq": 5, "key": "k-5", "blob": "ü"}
    assert (document["correlationid"], document["tenantid"], document["traceparent"]) == ("corr", "acme", TRACEPARENT)
    assert headers["x-bento-message-id"] == event.message_id
    if style.content_type_header:
        assert headers["content-type"] == "application/cloudevents+json"
    assert JsonCodec().decode(body, headers) == event
    assert JsonCodec().decode(body) == event  # structured mode needs no headers


def test_a_bus_in_any_format_reads_the_other_two() -> None:
    event, codec = _event(), JsonCodec()
    for fmt in WireFormat:
        body, headers = _encoder(fmt.value, NATS).encode(event)
        assert codec.decode(body, headers) == event, fmt


def test_amqp_legacy_colon_prefix_is_read() -> None:
    headers = {
        "cloudEvents:specversion": "1.0",
        "cloudEvents:id": "x-1",
        "cloudEvents:type": ContractEvent.__wire_name__,
    }
    decoded = JsonCodec().decode(b'{"seq": 1}', headers)
    assert isinstance(decoded, ContractEvent) and decoded.message_id == "x-1"


def test_cloudevent_of_an_unknown_type_decodes_into_the_subscription_type() -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "go-1", "ce-type": "com.example.thing", "ce-source": "go"}
    with pytest.raises(UnknownMessageTypeError):
        JsonCodec().decode(b'{"seq": 2}', headers)
    decoded = JsonCodec().decode(b'{"seq": 2}', headers, message_type=ContractEvent)
    assert isinstance(decoded, ContractEvent) and (decoded.seq, decoded.message_id) == (2, "go-1")


def test_cloudevent_schemaversion_runs_the_upcasters() -> None:
    class Renamed(DomainEvent, name="test.wire.renamed", version=2):
        title: str

    registry = MessageRegistry()
    registry.add_upcaster(
        "test.wire.renamed", 1, lambda d: {**{k: v for k, v in d.items() if k != "name"}, "title": d["name"]}
    )
    headers = {"ce_specversion": "1.0", "ce_id": "u-1", "ce_type": "test.wire.renamed", "ce_schemaversion": "1"}
    decoded = JsonCodec(registry).decode(b'{"name": "old"}', headers)
    assert isinstance(decoded, Renamed) and decoded.title == "old"


def test_cloudevent_refuses_non_json_data() -> None:
    structured = {"specversion": "1.0", "id": "b", "type": ContractEvent.__wire_name__, "data_base64": "AAAA"}
    with pytest.raises(DeserializationError, match="data_base64"):
        JsonCodec().decode(json.dumps(structured).encode())
    headers = {
        "ce_specversion": "1.0",
        "ce_id": "b",
        "ce_type": ContractEvent.__wire_name__,
        "content-type": "text/plain",
    }
    with pytest.raises(DeserializationError, match="JSON data only"):
        JsonCodec().decode(b"hello", headers)


def test_plain_payload_takes_the_transport_id_and_time() -> None:
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    facts = TransportFacts(message_id="1700000000000-0", timestamp=stamp, correlation_id="amqp-corr")
    decoded = JsonCodec().decode(
        b'{"seq": 9}', {"traceparent": TRACEPARENT}, transport=facts, message_type=ContractEvent
    )
    assert isinstance(decoded, ContractEvent)
    assert (decoded.message_id, decoded.timestamp, decoded.metadata.correlation_id) == (
        "1700000000000-0",
        stamp,
        "amqp-corr",
    )
    assert decoded.metadata.trace_context == {"traceparent": TRACEPARENT}


def test_plain_payload_without_a_transport_id_gets_one_from_its_body() -> None:
    codec = JsonCodec()
    first = codec.decode(b'{"seq": 9}', message_type=ContractEvent)
    again = codec.decode(b'{"seq": 9}', message_type=ContractEvent)
    other = codec.decode(b'{"seq": 10}', message_type=ContractEvent)
    assert first.message_id == again.message_id != other.message_id


def test_plain_payload_is_validated_and_needs_a_message_type() -> None:
    with pytest.raises(DeserializationError, match="message_type="):
        JsonCodec().decode(b'{"seq": 9}')
    with pytest.raises(DeserializationError, match="does not match ContractEvent"):
        JsonCodec().decode(b'{"seq": "nine", "surprise": 1}', message_type=ContractEvent)


async def test_inprocess_bus_in_cloudevents_mode_round_trips_and_reads_plain_payloads() -> None:
    settings = InProcessSettings(wire_format="cloudevents-binary")
    async with InProcessMessageBus(settings) as bus:
        received, plain = Collector(), Collector()
        await bus.subscribe("wire.t", received, group="g")
        await bus.subscribe("wire.plain", plain, group="g", message_type=ContractEvent)
        event = _event()
        await bus.publish("wire.t", event)
        await bus.publish_raw("wire.plain", b'{"seq": 3, "message_id": "p-1"}')
        assert await received.wait_for(1) == {event.message_id}
        assert received.received[0] == event
        assert await plain.wait_for(1) == {"p-1"}


def test_kafka_helpers_carry_binary_mode_headers_both_ways() -> None:
    from bento.adapters.shared.wire_headers import byte_headers, text_headers

    event = _event()
    body, headers = _encoder("cloudevents-binary", KAFKA).encode(event)
    pairs = byte_headers(headers)
    assert ("ce_id", event.message_id.encode()) in pairs
    assert JsonCodec().decode(body, text_headers(pairs)) == event


def test_metadata_headers_can_be_turned_off_in_the_bento_format() -> None:
    settings = InProcessSettings(metadata_headers=False)
    event = _event()
    body, headers = WireEncoder(JsonCodec(), settings, NATS).encode(event, {"x-origin": "t"})
    assert headers == {"x-origin": "t"}
    assert JsonCodec().decode(body, headers) == event.with_metadata(headers={"x-origin": "t"})


@pytest.mark.parametrize("fmt", ["bento", "cloudevents-binary", "cloudevents-structured"])
@pytest.mark.parametrize("metadata_headers", [True, False])
@pytest.mark.parametrize("free", [None, {"x-origin": "t", "x-bento-tenant-id": "other"}])
def test_header_pairs_are_the_text_headers_encoded_in_the_same_order(
    fmt: str, metadata_headers: bool, free: dict[str, str] | None
) -> None:
    """Kafka's publisher builds the pairs directly (`encode_pairs`); they must be exactly what
    encoding the text headers would give, for a bare message and a fully set one alike."""
    settings = InProcessSettings(wire_format=fmt, metadata_headers=metadata_headers, cloudevents_source="orders")
    encoder = WireEncoder(JsonCodec(), settings, KAFKA)
    plain = make_event(7, key="k-7")
    tracestate = {"traceparent": TRACEPARENT, "tracestate": "a=1"}
    for event in (plain, _event(), _event().with_metadata(trace_context=tracestate), plain):
        body, text = encoder.encode(event, free)
        pairs = [(name, value.encode()) for name, value in text.items()] or None
        assert encoder.encode_pairs(event, free) == (body, pairs)


def test_header_values_are_read_as_bytes_and_a_null_value_is_empty() -> None:
    """Kafka hands the codec its headers with bytes values (and None for a null value)."""
    event = _event()
    body, headers = _encoder("cloudevents-binary", KAFKA).encode(event)
    assert JsonCodec().decode(body, {name: value.encode() for name, value in headers.items()}) == event
    plain = json.dumps({"seq": 1, "key": "k", "blob": ""}).encode()
    raw = {"x-bento-correlation-id": None, "x-bento-message-id": b"id-1", "traceparent": TRACEPARENT.encode()}
    decoded = JsonCodec().decode(plain, raw, message_type=ContractEvent)
    assert decoded.message_id == "id-1"
    assert decoded.metadata.correlation_id == ""  # not "None"
    assert decoded.correlation_id == "id-1"  # so the message starts its own conversation
    assert decoded.metadata.trace_context == {"traceparent": TRACEPARENT}
