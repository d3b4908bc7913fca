"""Operational gauges: outbox and projection lag from a store, backlog and dead-letter depth
from a bus's BacklogProbe, exported through prometheus-client and OpenTelemetry under the
same names; and the tracing switch `bento run` reads."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bento.adapters.memory import InProcessMessageBus, InProcessSettings
from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.application import gauges, telemetry
from bento.application.errors import ConfigurationError
from bento.application.gauges import Gauges, Reading
from bento.infrastructure.prometheus import install_gauges, prometheus_name
from bento.infrastructure.tracing import configure_tracing
from bento.testing.events import ContractEvent, make_event


async def _store_with_lag() -> tuple[InMemoryEventStore, InMemoryCheckpointStore]:
    store, checkpoints = InMemoryEventStore(), InMemoryCheckpointStore()
    for n in range(5):
        await store.append(f"s-{n}", [make_event(n)], 0)
    await checkpoints.save("svc.outbox", 2)
    await checkpoints.save("orders", 5)
    return store, checkpoints


def _scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import generate_latest

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }


async def test_lag_gauges_read_the_store_and_the_checkpoints() -> None:
    store, checkpoints = await _store_with_lag()
    sampled = Gauges()
    sampled.add("outbox", gauges.outbox_lag("svc.outbox", store, checkpoints))
    sampled.add("projection", gauges.projection_lag("orders", store, checkpoints))
    assert sampled.readings() == []  # nothing until the first refresh
    await sampled.refresh()
    assert sorted(sampled.readings(), key=lambda r: r.name) == [
        Reading(gauges.OUTBOX_LAG, (("bento.outbox.name", "svc.outbox"),), 3),
        Reading(gauges.PROJECTION_LAG, (("bento.projection.name", "orders"),), 0),
    ]
    await checkpoints.save("svc.outbox", 5)
    await sampled.refresh(max_age=60)  # young enough: not sampled again
    assert sampled.readings(gauges.OUTBOX_LAG)[0].value == 3
    await sampled.refresh()
    assert sampled.readings(gauges.OUTBOX_LAG)[0].value == 0


async def test_backlog_and_dead_letters_of_a_subscription() -> None:
    gate = asyncio.Event()

    async def held(message: ContractEvent) -> None:
        if message.key == "poison":
            raise ValueError("poison")
        await gate.wait()

    async with InProcessMessageBus(InProcessSettings(max_attempts=1)) as bus:
        await bus.subscribe("orders.placed", held, group="billing")  # type: ignore[arg-type]
        await bus.publish("orders.placed", make_event(0, key="poison"))
        for n in range(1, 6):
            await bus.publish("orders.placed", make_event(n))
        sampled = Gauges()
        sampled.add("bus", gauges.subscription_backlog(bus, "inprocess", [("orders.placed", "billing")]))
        await asyncio.sleep(0.05)  # the poison is dead-lettered, message 1 is held, 2..5 wait
        await sampled.refresh()
        labels = (
            ("messaging.system", "inprocess"),
            ("messaging.destination.name", "orders.placed"),
            ("messaging.consumer.group.name", "billing"),
        )
        assert sampled.readings(gauges.CONSUMER_BACKLOG) == [Reading(gauges.CONSUMER_BACKLOG, labels, 4)]
        assert sampled.readings(gauges.DLQ_DEPTH) == [Reading(gauges.DLQ_DEPTH, labels, 1)]
        gate.set()
        await asyncio.sleep(0.05)
        await sampled.refresh()
        assert sampled.readings(gauges.CONSUMER_BACKLOG)[0].value == 0


async def test_a_failing_source_drops_its_gauges_and_the_others_stay(caplog: pytest.LogCaptureFixture) -> None:
    store, checkpoints = await _store_with_lag()
    broken = {"yes": True}

    async def flaky() -> list[Reading]:
        if broken["yes"]:
            raise ConnectionError("broker down")
        return [Reading(gauges.DLQ_DEPTH, (), 7)]

    sampled = Gauges()
    sampled.add("outbox", gauges.outbox_lag("svc.outbox", store, checkpoints))
    sampled.add("flaky", flaky)
    await sampled.refresh()
    await sampled.refresh()
    assert [r.name for r in sampled.readings()] == [gauges.OUTBOX_LAG]
    assert sum("gauge source flaky failed" in r.message for r in caplog.records) == 1  # once per change
    broken["yes"] = False
    await sampled.refresh()
    assert sampled.readings(gauges.DLQ_DEPTH)[0].value == 7


async def test_prometheus_and_opentelemetry_export_the_same_names() -> None:
    store, checkpoints = await _store_with_lag()
    sampled = Gauges()
    sampled.add("outbox", gauges.outbox_lag("svc.outbox", store, checkpoints))
    sampled.add("projection", gauges.projection_lag("orders", store, checkpoints))
    await sampled.refresh()

    registry = CollectorRegistry()
    install_gauges(sampled, registry)
    samples = _scrape(registry)
    assert samples[("bento_outbox_lag", (("bento_outbox_name", "svc.outbox"),))] == 3
    assert samples[("bento_projection_lag", (("bento_projection_name", "orders"),))] == 0

    reader = InMemoryMetricReader()
    gauges.observe_with_opentelemetry(sampled, MeterProvider(metric_readers=[reader]))
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {
        m.name: list(m.data.data_points) for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics
    }
    assert [(p.attributes, p.value) for p in points[gauges.OUTBOX_LAG]] == [({"bento.outbox.name": "svc.outbox"}, 3)]
    # every OpenTelemetry gauge has its Prometheus twin, and nothing else is exported
    assert {prometheus_name(name) for name in points} <= {name for name, _ in samples}
    assert {name for name, _ in samples} == {prometheus_name(name) for name in points}


def test_tracing_switch_off_console_and_missing_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    assert configure_tracing("off", "svc") is None and telemetry.tracer is None
    provider = configure_tracing("console", "svc")
    try:
        assert telemetry.tracer is not None
        assert provider.resource.attributes["service.name"] == "svc"
    finally:
        telemetry.disable_tracing()
        provider.shutdown()
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if the SDK were not installed
    with pytest.raises(ConfigurationError, match="TELEMETRY__TRACING=console needs the OpenTelemetry SDK"):
        configure_tracing("console", "svc")
    assert telemetry.tracer is None


def test_otlp_without_an_exporter_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    ):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigurationError, match="pip install opentelemetry-exporter-otlp"):
        configure_tracing("otlp", "svc")
    assert telemetry.tracer is None


async def test_fastapi_metrics_router_serves_the_gauges_sampled_per_scrape() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from bento.integrations.fastapi import metrics_router

    store, checkpoints = await _store_with_lag()
    sampled = Gauges()
    sampled.add("outbox", gauges.outbox_lag("svc.outbox", store, checkpoints))
    app = FastAPI()
    app.include_router(metrics_router(gauges=sampled))
    client = TestClient(app)
    assert 'bento_outbox_lag{bento_outbox_name="svc.outbox"} 3.0' in client.get("/metrics").text
    await checkpoints.save("svc.outbox", 4)
    sampled.refreshed_at = 0.0  # older than the router's one-second reuse
    assert 'bento_outbox_lag{bento_outbox_name="svc.outbox"} 1.0' in client.get("/metrics").text
