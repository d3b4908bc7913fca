"""Bento's messaging metrics in the Prometheus text format, for `/metrics`.

`PrometheusMetrics` implements `telemetry.MessagingMetrics` with prometheus-client
(extra `bento[prometheus]`), under the names the OpenTelemetry Prometheus exporter gives the
semantic-convention instruments (`messaging.client.sent.messages` becomes
`messaging_client_sent_messages_total`, `messaging.process.duration` in seconds becomes
`messaging_process_duration_seconds`), so dashboards work with either. `bento run --http`
serves `exposition()` at `/metrics`, together with the operational gauges (`GaugeCollector`:
outbox and projection lag, consumer backlog and dead-letter depth per subscription);
`bento.integrations.fastapi.metrics_router()` mounts it in an application. An application
already exporting with the OpenTelemetry SDK calls `telemetry.enable_metrics()` and
`gauges.observe_with_opentelemetry()` instead and does not need this module.

`watch(container)` adds seed 003's counters of every bus the container opened (the
`MessageBus.metrics` snapshot, read at each scrape) as `bento_bus_*{bus="event:default"}`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

from bento.application import telemetry
from bento.application.gauges import GAUGES, Gauges
from bento.infrastructure.health import opened_buses

#: The Prometheus text format's content type (version 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LABELS = ("messaging_system", "messaging_destination_name")
_CONSUMER_LABELS = (*_LABELS, "messaging_consumer_group_name")
#: Handler-duration buckets: 1 ms .. 10 s (Prometheus's defaults start at 5 ms).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusMetrics:
    """The messaging instruments in a prometheus-client registry (the global one by default)."""

    def __init__(self, registry: Any = None) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise ImportError("/metrics needs prometheus-client: pip install 'bento-ddd[prometheus]'") from exc
        self.registry = registry if registry is not None else prom.REGISTRY
        kw: dict[str, Any] = {"registry": self.registry}
        self._sent = prom.Counter("messaging_client_sent_messages", "Messages a bus published", _LABELS, **kw)
        self._consumed = prom.Counter(
            "messaging_client_consumed_messages", "Messages delivered to a handler", _CONSUMER_LABELS, **kw
        )
        self._process = prom.Histogram(
            "messaging_process_duration_seconds",
            "Delivery processing time",
            (*_CONSUMER_LABELS, "error_type"),
            buckets=_BUCKETS,
            **kw,
        )
        self._handler = prom.Histogram(
            "bento_handler_duration_seconds",
            "Handler time by message type and outcome",
            ("bento_message_type", "bento_outcome"),
            buckets=_BUCKETS,
            **kw,
        )
        self._retries = prom.Counter(
            "bento_messaging_retries", "Deliveries to be retried", (*_CONSUMER_LABELS, "error_type"), **kw
        )
        self._dead = prom.Counter(
            "bento_messaging_dead_letters", "Messages dead-lettered", (*_CONSUMER_LABELS, "error_type"), **kw
        )
        self._buses: BusCountersCollector | None = None

    def sent(self, system: str, topic: str) -> None:
        self._sent.labels(system, topic).inc()

    def processed(
        self,
        system: str,
        topic: str,
        group: str | None,
        message_type: str,
        outcome: str,
        seconds: float,
        error_type: str,
    ) -> None:
        group = group or ""
        self._consumed.labels(system, topic, group).inc()
        self._process.labels(system, topic, group, error_type).observe(seconds)
        self._handler.labels(message_type, outcome).observe(seconds)
        if outcome == "retry":
            self._retries.labels(system, topic, group, error_type).inc()
        elif outcome == "dead":
            self._dead.labels(system, topic, group, error_type).inc()

    def dead_lettered(self, system: str, topic: str, group: str | None, error_type: str) -> None:
        self._dead.labels(system, topic, group or "", error_type).inc()

    def watch(self, container: Any) -> None:
        """Export the counters of every bus `container` opens (idempotent; held weakly)."""
        if self._buses is None:
            self._buses = BusCountersCollector()
            self.registry.register(self._buses)
        self._buses.containers.add(container)

    def exposition(self) -> bytes:
        """Every metric of the registry in the Prometheus text format."""
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


#: Seed 003's counters (BusMetrics field → help); exported as `bento_bus_<field>_total`.
_BUS_COUNTERS = {
    "messages_published": "Messages the broker accepted from this bus",
    "messages_consumed": "Deliveries whose handler returned",
    "publish_errors": "Messages whose publish raised (refused, too large, broker down)",
    "consume_errors": "Deliveries retried or dead-lettered",
    "connection_errors": "Broker connections lost or refused",
    "reconnects": "Broker connections restored",
    "retries": "Deliveries scheduled for another attempt",
    "dead_lettered": "Messages sent to the dead-letter path",
    "loop_failures": "Unexpected failures of a consume loop (restarted)",
}


class BusCountersCollector:
    """A prometheus-client collector reading `bus.metrics` of the watched containers' opened
    buses at each scrape (nothing is copied on the hot path)."""

    def __init__(self) -> None:
        self.containers: weakref.WeakSet[Any] = weakref.WeakSet()

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families = {
            field: CounterMetricFamily(f"bento_bus_{field}", text, labels=["bus"])
            for field, text in _BUS_COUNTERS.items()
        }
        checked = GaugeMetricFamily(
            "bento_bus_last_health_check_timestamp_seconds", "When health_check() last ran", labels=["bus"]
        )
        healthy = GaugeMetricFamily(
            "bento_bus_health_check_status", "Latest health_check(): 1 healthy, 0 unhealthy", labels=["bus"]
        )
        seen: set[int] = set()
        for container in list(self.containers):
            for name, bus in opened_buses(container).items():
                if id(bus) in seen:
                    continue
                seen.add(id(bus))
                metrics = bus.metrics
                for field, family in families.items():
                    family.add_metric([name], getattr(metrics, field))
                if metrics.last_health_check is not None:
                    checked.add_metric([name], metrics.last_health_check.timestamp())
                    healthy.add_metric([name], 1.0 if metrics.health_check_status == "healthy" else 0.0)
        yield from families.values()
        yield checked
        yield healthy


_installed: PrometheusMetrics | None = None


def install() -> PrometheusMetrics:
    """The process's `PrometheusMetrics` on the global registry, made the buses' recorder
    (once per process: the global registry refuses a metric registered twice)."""
    global _installed
    if _installed is None:
        _installed = PrometheusMetrics()
    telemetry.enable_metrics(_installed)
    return _installed


class GaugeCollector:
    """Bento's operational gauges (bento.application.gauges) as Prometheus gauges, under the
    OpenTelemetry names with `.` replaced by `_` (`bento.outbox.lag` → `bento_outbox_lag`).
    It reports the latest readings; whoever serves the scrape refreshes them first."""

    def __init__(self, gauges: Gauges) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        readings = self.gauges.readings()
        for name, (_, description, keys) in GAUGES.items():
            family = GaugeMetricFamily(prometheus_name(name), description, labels=[prometheus_name(k) for k in keys])
            for reading in readings:
                if reading.name == name:
                    family.add_metric([value for _, value in reading.attributes], reading.value)
            yield family

    def describe(self) -> Iterator[Any]:
        return iter(())  # no fixed samples: collected at scrape time


def prometheus_name(name: str) -> str:
    """An OpenTelemetry instrument or attribute name as the Prometheus exporter writes it."""
    return name.replace(".", "_")


_gauge_collector: GaugeCollector | None = None


def install_gauges(gauges: Gauges, registry: Any = None) -> GaugeCollector:
    """Serve `gauges` from the global registry (or `registry`); on the global one this replaces
    the gauges installed before (one runtime per process)."""
    global _gauge_collector
    try:
        import prometheus_client as prom
    except ImportError as exc:
        raise ImportError("/metrics needs prometheus-client: pip install 'bento-ddd[prometheus]'") from exc
    collector = GaugeCollector(gauges)
    if registry is not None:
        registry.register(collector)
        return collector
    if _gauge_collector is not None:
        prom.REGISTRY.unregister(_gauge_collector)
    prom.REGISTRY.register(collector)
    _gauge_collector = collector
    return collector
