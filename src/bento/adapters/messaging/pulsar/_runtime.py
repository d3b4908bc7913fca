"""What one PulsarMessageBus shares with its producers and subscriptions."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pulsar

from bento.adapters.messaging.pulsar._bridge import LoopBridge
from bento.adapters.messaging.pulsar._client_calls import ClientCalls
from bento.adapters.messaging.pulsar.settings import PulsarSettings
from bento.application.retry import RetryPolicy
from bento.application.serialization import JsonCodec

if TYPE_CHECKING:
    from bento.adapters.messaging.pulsar._producers import ProducerPool


@dataclass
class PulsarMetrics:
    """Seed 003's event-bus counters. Only the event loop writes them, so no lock."""

    messages_published: int = 0
    messages_consumed: int = 0
    publish_errors: int = 0
    consume_errors: int = 0
    connection_errors: int = 0
    retries: int = 0
    dead_lettered: int = 0
    reconnects: int = 0
    last_health_check: datetime | None = None
    health_check_status: bool | None = None

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Runtime:
    """The started bus's moving parts, handed to producers and subscriptions."""

    client: pulsar.Client
    settings: PulsarSettings
    codec: JsonCodec
    policy: RetryPolicy
    bridge: LoopBridge
    calls: ClientCalls
    metrics: PulsarMetrics
    producers: ProducerPool
