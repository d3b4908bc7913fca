"""What an adapter promises, so contract suites and users can ask instead of guessing."""

from __future__ import annotations

from dataclasses import dataclass

from bento.application.credentials import mask_credentials


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Promises of one MessageBus adapter.

    `ordered_per_key`: with `subscribe(..., ordered=True)`, messages that share a key are
    handled one at a time in publish order. `persistent`: published messages survive a
    broker restart. `redelivery`: a failed handler's message comes back (retry, then
    dead-letter). `pattern_subscriptions`: `subscribe` accepts `*` wildcards.
    `consumer_groups`: a group shares work among its members. `transport_headers`: headers
    travel beside the body (metadata headers, CloudEvents binary mode; Redis pub/sub has none).
    `mechanism` says in words how ordering or redelivery is achieved (shown in docs and health output).
    """

    ordered_per_key: bool = False
    persistent: bool = False
    redelivery: bool = True
    dead_letter: bool = True
    pattern_subscriptions: bool = True
    consumer_groups: bool = True
    broadcast: bool = True
    transport_headers: bool = True
    mechanism: str = ""


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """Outcome of one health check: a real round trip to the backend, with its latency."""

    healthy: bool
    component: str
    latency_ms: float = 0.0
    detail: str = ""

    def __post_init__(self) -> None:
        # Details often quote a driver's exception, which may name a URL with its password.
        object.__setattr__(self, "detail", mask_credentials(self.detail))
