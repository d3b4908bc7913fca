"""Seed 003's event-bus counters, part of the MessageBus port (`MessageBus.metrics`).

Seed 003 names MessagesPublished, MessagesConsumed, PublishErrors, ConsumeErrors,
ConnectionErrors, LastHealthCheck and HealthCheckStatus; the adapters add reconnects,
retries and dead letters. The adapters were first written with a counters class each,
and their field types had drifted apart (a Unix float here, a bool status there), so
dashboards could not read every bus alike. Now an adapter keeps one `BusCounters`, bumps
it on its own event loop, and hands out either the counters themselves or a frozen
`BusMetrics` copy. They live in the application layer because the port promises them:
the health checker, `bento health` and the exporters read them from any bus.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

#: `unknown` until the first `health_check()`, then the outcome of the latest one.
HealthCheckStatus = Literal["unknown", "healthy", "unhealthy"]


@dataclass(frozen=True, slots=True)
class BusMetrics:
    """A point-in-time copy of the counters, safe to hand to another thread or an exporter.

    `consume_errors` counts deliveries that were retried or dead-lettered (plus failed
    fetches where the adapter fetches); `retries` and `dead_lettered` split those up.
    `loop_failures` counts unexpected exceptions in a consume loop itself (each one was
    logged, made `health_check()` unhealthy for a while, and the loop was restarted)."""

    messages_published: int = 0
    messages_consumed: int = 0
    publish_errors: int = 0
    consume_errors: int = 0
    connection_errors: int = 0
    retries: int = 0
    dead_lettered: int = 0
    reconnects: int = 0
    loop_failures: int = 0
    last_health_check: datetime | None = None
    health_check_status: HealthCheckStatus = "unknown"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class BusCounters:
    """The live counters. Only the adapter's event loop writes them (no lock: `+= 1` on the
    hot path stays a plain attribute update); read a `snapshot()` from anywhere else."""

    messages_published: int = 0
    messages_consumed: int = 0
    publish_errors: int = 0
    consume_errors: int = 0
    connection_errors: int = 0
    retries: int = 0
    dead_lettered: int = 0
    reconnects: int = 0
    loop_failures: int = 0
    last_health_check: datetime | None = None
    health_check_status: HealthCheckStatus = "unknown"

    def record_health_check(self, healthy: bool) -> None:
        """Note the time (UTC) and outcome of a `health_check()`."""
        self.last_health_check = datetime.now(UTC)
        self.health_check_status = "healthy" if healthy else "unhealthy"

    def snapshot(self) -> BusMetrics:
        return BusMetrics(**asdict(self))

    def as_dict(self) -> dict[str, Any]:
        """Plain values by field name, for an exporter."""
        return asdict(self)
