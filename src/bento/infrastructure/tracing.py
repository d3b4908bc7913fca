"""Tracing turned on by configuration (`TELEMETRY__TRACING=console|otlp`), for `bento run`.

The library needs only `opentelemetry-api`; exporting needs the SDK (`opentelemetry-sdk`) and,
for OTLP, `opentelemetry-exporter-otlp`, which reads the standard `OTEL_EXPORTER_OTLP_*`
variables itself. Asked for and not installed is a ConfigurationError naming the package:
a service that was told to trace must not start untraced.
"""

from __future__ import annotations

import importlib
from typing import Any

from bento.application import telemetry
from bento.application.errors import ConfigurationError


def configure_tracing(mode: str, service_name: str) -> Any:
    """Trace every bus, store, relay and projection with an SDK provider exporting per `mode`
    (`off` does nothing and returns None); returns the provider (`shutdown()` it to flush)."""
    if mode == "off":
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        raise ConfigurationError(
            [f"TELEMETRY__TRACING={mode} needs the OpenTelemetry SDK: pip install 'bento-ddd[otel]' opentelemetry-sdk"]
        ) from None
    exporter: SpanExporter = ConsoleSpanExporter() if mode == "console" else _otlp_exporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    telemetry.enable_tracing(provider)
    return provider


def _otlp_exporter() -> Any:
    """The OTLP span exporter, over HTTP (protobuf) or else gRPC, whichever is installed."""
    for module in (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    ):
        try:
            return importlib.import_module(module).OTLPSpanExporter()
        except ImportError:
            continue
    raise ConfigurationError(
        ["TELEMETRY__TRACING=otlp needs an OTLP exporter: pip install opentelemetry-exporter-otlp"]
    )
