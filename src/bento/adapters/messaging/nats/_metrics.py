"""Counters of seed 003's event bus metrics, kept by the adapter and read as a snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class BusMetrics:
    """A point-in-time copy of the counters (seed 003: MessagesPublished … HealthCheckStatus).

    `messages_consumed` counts handled-and-acknowledged deliveries; `consume_errors`
    counts deliveries that were retried or dead-lettered, plus failed fetches."""

    messages_published: int = 0
    messages_consumed: int = 0
    publish_errors: int = 0
    consume_errors: int = 0
    connection_errors: int = 0
    reconnects: int = 0
    dead_lettered: int = 0
    last_health_check: datetime | None = None
    health_check_status: str = "unknown"


class Counters:
    """Mutable counters; only the event loop thread touches them, so no locking."""

    def __init__(self) -> None:
        self.messages_published = 0
        self.messages_consumed = 0
        self.publish_errors = 0
        self.consume_errors = 0
        self.connection_errors = 0
        self.reconnects = 0
        self.dead_lettered = 0
        self.last_health_check: datetime | None = None
        self.health_check_status = "unknown"

    def snapshot(self) -> BusMetrics:
        return BusMetrics(
            messages_published=self.messages_published,
            messages_consumed=self.messages_consumed,
            publish_errors=self.publish_errors,
            consume_errors=self.consume_errors,
            connection_errors=self.connection_errors,
            reconnects=self.reconnects,
            dead_lettered=self.dead_lettered,
            last_health_check=self.last_health_check,
            health_check_status=self.health_check_status,
        )
