"""Seed 003's counters for the adapters (defined beside the port, in `bento.application.bus_metrics`)."""

from __future__ import annotations

from bento.application.bus_metrics import BusCounters, BusMetrics, HealthCheckStatus

__all__ = ["BusCounters", "BusMetrics", "HealthCheckStatus"]
