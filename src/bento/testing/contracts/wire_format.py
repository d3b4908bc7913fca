"""WireFormatContract: how every MessageBus adapter meets docs/wire-format.md.

Mixed into MessageBusContract, so every adapter runs it. Foreign producers are simulated with
`publish_raw`, whose headers reach the consumer as transport headers; CloudEvents headers use
the Kafka spelling (`ce_`), which a consumer accepts on every broker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import jsonschema
import pytest

from bento.application.ports.message_bus import DeadLetter, MessageBus
from bento.application.wire import ID_HEADER, TYPE_HEADER, VERSION_HEADER
from bento.domain.events import DomainEvent
from bento.schemas import load
from bento.testing.collector import Collector
from bento.testing.events import ContractEvent, make_event

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class WireFormatContract:
    async def test_published_body_matches_the_envelope_schema_and_headers_carry_metadata(
        self, bus: MessageBus, topic: str, group: str
    ) -> None:
        if not (bus.capabilities.dead_letter and bus.capabilities.transport_headers):
            pytest.skip("adapter keeps no dead letters or carries no transport headers to inspect")

        async def refuse(event: DomainEvent) -> None:
            raise RuntimeError("keep the body for inspection")

        await bus.subscribe(topic, refuse, group=group)
        sent = make_event(3, key="k-3").with_metadata(correlation_id="c-3", trace_context={"traceparent": TRACEPARENT})
        await bus.publish(topic, sent)
        letter = (await _dead_letters(bus, topic, group))[0]
        jsonschema.validate(json.loads(letter.body), load("envelope"))
        assert letter.headers.get(ID_HEADER) == sent.message_id
        assert letter.headers.get(TYPE_HEADER) == ContractEvent.__wire_name__
        assert letter.headers.get(VERSION_HEADER) == "1"
        assert letter.headers.get("x-bento-correlation-id") == "c-3"
        assert letter.headers.get("traceparent") == TRACEPARENT

    async def test_plain_payload_decodes_into_message_type_and_keeps_its_id_on_redelivery(
        self, bus: MessageBus, topic: str, group: str
    ) -> None:
        if not bus.capabilities.redelivery:
            pytest.skip("adapter does not redeliver")
        seen: list[DomainEvent] = []

        async def fail_once(event: DomainEvent) -> None:
            seen.append(event)
            if len(seen) == 1:
                raise RuntimeError("first delivery fails")

        await bus.subscribe(topic, fail_once, group=group, message_type=ContractEvent)
        await bus.publish_raw(topic, b'{"seq": 41, "key": "plain"}', headers={"traceparent": TRACEPARENT})
        await _until(lambda: len(seen) >= 1)
        assert seen[0].metadata.trace_context.get("traceparent") == TRACEPARENT
        await _until(lambda: len(seen) >= 2)
        first, second = seen[0], seen[1]
        assert isinstance(first, ContractEvent) and (first.seq, first.key) == (41, "plain")
        assert first.message_id == second.message_id
        assert first.timestamp == second.timestamp

    async def test_plain_payload_keeps_its_own_message_id(self, bus: MessageBus, topic: str, group: str) -> None:
        received = Collector()
        await bus.subscribe(topic, received, group=group, message_type=ContractEvent)
        await bus.publish_raw(topic, b'{"seq": 1, "message_id": "foreign-1"}')
        assert await received.wait_for(1) == {"foreign-1"}

    async def test_cloudevents_in_both_modes_from_another_producer(
        self, bus: MessageBus, topic: str, group: str
    ) -> None:
        if not bus.capabilities.transport_headers:
            pytest.skip("adapter carries no transport headers (binary mode needs them)")
        received = Collector()
        await bus.subscribe(topic, received, group=group)
        attributes = {
            "specversion": "1.0",
            "type": ContractEvent.__wire_name__,
            "source": "go-service",
            "time": "2026-01-02T03:04:05+00:00",
            "correlationid": "corr-1",
            "tenantid": "tenant-1",
        }
        binary = {f"ce_{k}": v for k, v in {**attributes, "id": "ce-binary-1"}.items()}
        binary["content-type"] = "application/json"
        binary["traceparent"] = TRACEPARENT
        await bus.publish_raw(topic, b'{"seq": 1, "key": "b"}', headers=binary)
        structured = {**attributes, "id": "ce-structured-1", "data": {"seq": 2, "key": "s"}}
        await bus.publish_raw(
            topic, json.dumps(structured).encode(), headers={"content-type": "application/cloudevents+json"}
        )
        assert await received.wait_for(2) == {"ce-binary-1", "ce-structured-1"}
        by_id = {m.message_id: m for m in received.received}
        got = by_id["ce-binary-1"]
        assert isinstance(got, ContractEvent) and got.seq == 1
        assert (got.metadata.correlation_id, got.metadata.tenant_id) == ("corr-1", "tenant-1")
        assert got.timestamp.isoformat() == "2026-01-02T03:04:05+00:00"
        assert got.metadata.trace_context.get("traceparent") == TRACEPARENT
        assert isinstance(by_id["ce-structured-1"], ContractEvent) and by_id["ce-structured-1"].seq == 2


async def _dead_letters(bus: MessageBus, topic: str, group: str) -> list[DeadLetter]:
    async with asyncio.timeout(15):
        while True:
            letters = await bus.dead_letters(topic, group=group)
            if letters:
                return letters
            await asyncio.sleep(0.1)


async def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the handler under test owns no event to set
            await asyncio.sleep(0.05)
