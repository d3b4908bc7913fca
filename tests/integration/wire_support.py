"""Helpers of the interop tests (docs/wire-format.md): what a foreign producer sends, and a
subscriber that records deliveries and refuses the first ones, to see redeliveries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from bento.domain.events import DomainEvent
from bento.testing.events import ContractEvent

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TYPE = ContractEvent.__wire_name__


def ce_attributes(event_id: str) -> dict[str, str]:
    """A foreign service's CloudEvent attributes, with Bento's extensions."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "//go-service",
        "type": TYPE,
        "time": "2026-03-04T05:06:07+00:00",
        "correlationid": "corr-go",
        "causationid": "cause-go",
        "tenantid": "tenant-go",
    }


def binary_headers(event_id: str, prefix: str) -> dict[str, str]:
    headers = {prefix + k: v for k, v in ce_attributes(event_id).items()}
    headers["traceparent"] = TRACEPARENT
    return headers


def structured_body(event_id: str, seq: int) -> bytes:
    return json.dumps({**ce_attributes(event_id), "datacontenttype": "application/json", "data": {"seq": seq}}).encode()


class Recorder:
    """Records every delivery; raises on the first `refuse` of them."""

    def __init__(self, refuse: int = 0) -> None:
        self.received: list[DomainEvent] = []
        self.refuse = refuse

    async def __call__(self, event: DomainEvent) -> None:
        self.received.append(event)
        if len(self.received) <= self.refuse:
            raise RuntimeError("refused, to see the redelivery")

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[DomainEvent]:
        await until(lambda: len(self.received) >= count, timeout)
        return self.received


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling what a foreign client or handler fills
            await asyncio.sleep(0.05)


def assert_foreign_cloudevent(got: DomainEvent, event_id: str, seq: int, *, traced: bool = True) -> None:
    assert isinstance(got, ContractEvent), type(got)
    assert (got.message_id, got.seq) == (event_id, seq)
    assert got.timestamp.isoformat() == "2026-03-04T05:06:07+00:00"
    meta = got.metadata
    assert (meta.correlation_id, meta.causation_id, meta.tenant_id) == ("corr-go", "cause-go", "tenant-go")
    if traced:
        assert meta.trace_context.get("traceparent") == TRACEPARENT
