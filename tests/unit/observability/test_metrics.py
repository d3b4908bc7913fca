"""Messaging metrics on the in-process bus: OpenTelemetry instruments (SDK in-memory reader),
the Prometheus recorder, and the FastAPI /metrics route."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bento.adapters.memory import InProcessMessageBus, InProcessSettings
from bento.application import telemetry
from bento.infrastructure.prometheus import PrometheusMetrics
from bento.integrations.fastapi import metrics_router
from bento.testing.events import ContractEvent, make_event


@pytest.fixture(autouse=True)
def _metrics_off() -> Iterator[None]:
    yield
    telemetry.disable_metrics()


async def _workload(topic: str) -> None:
    """5 messages handled, 1 poison (fails every attempt: 2 retries, then dead-lettered)."""
    done = asyncio.Event()
    handled: list[int] = []

    async def handle(message: ContractEvent) -> None:
        if message.key == "poison":
            raise ValueError("bad")
        handled.append(message.seq)
        if len(handled) == 5:
            done.set()

    settings = InProcessSettings(max_attempts=3, retry_delays=[0.0])
    async with InProcessMessageBus(settings) as bus:
        await bus.subscribe(topic, handle, group="g")  # type: ignore[arg-type]
        await bus.publish(topic, make_event(99, key="poison"))
        for n in range(5):
            await bus.publish(topic, make_event(n))
        await asyncio.wait_for(done.wait(), 5)
        for _ in range(200):
            if await bus.dead_letters(topic, group="g"):
                break
            await asyncio.sleep(0.01)


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


async def test_opentelemetry_instruments_count_a_known_workload() -> None:
    reader = InMemoryMetricReader()
    telemetry.enable_metrics(meter_provider=MeterProvider(metric_readers=[reader]))
    await _workload("metered")
    points = _points(reader)
    assert sum(p.value for p in points[telemetry.SENT_MESSAGES]) == 6
    assert points[telemetry.SENT_MESSAGES][0].attributes == {
        telemetry.SYSTEM: "inprocess",
        telemetry.DESTINATION: "metered",
    }
    assert sum(p.value for p in points[telemetry.CONSUMED_MESSAGES]) == 5 + 3
    assert sum(p.count for p in points[telemetry.PROCESS_DURATION]) == 8
    assert sum(p.value for p in points[telemetry.RETRIES]) == 2
    (dead,) = points[telemetry.DEAD_LETTERS]
    assert dead.value == 1 and dead.attributes["error.type"] == "ValueError"
    assert dead.attributes[telemetry.CONSUMER_GROUP] == "g"


async def test_prometheus_exposition_parses_and_counts() -> None:
    recorder = PrometheusMetrics(CollectorRegistry())
    telemetry.enable_metrics(recorder)
    await _workload("scraped")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(recorder.exposition().decode())
        for s in family.samples
    }
    base = (("messaging_destination_name", "scraped"), ("messaging_system", "inprocess"))
    group = tuple(sorted((*base, ("messaging_consumer_group_name", "g"))))
    failed = tuple(sorted((*group, ("error_type", "ValueError"))))
    assert samples[("messaging_client_sent_messages_total", base)] == 6
    assert samples[("messaging_client_consumed_messages_total", group)] == 8
    assert samples[("bento_messaging_retries_total", failed)] == 2
    assert samples[("bento_messaging_dead_letters_total", failed)] == 1


async def test_untouched_bus_records_nothing_without_enable() -> None:
    assert telemetry.metrics is None and telemetry.tracer is None
    await _workload("quiet")  # runs the plain path; nothing to record into


def test_fastapi_mounts_metrics() -> None:
    app = FastAPI()
    app.include_router(metrics_router())
    response = TestClient(app).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert "messaging_client_sent_messages" in names
