"""What one PulsarMessageBus shares with its producers and subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulsar

from bento.adapters.pulsar._bridge import LoopBridge
from bento.adapters.pulsar._client_calls import ClientCalls
from bento.adapters.pulsar.settings import PulsarSettings
from bento.adapters.shared.metrics import BusCounters
from bento.adapters.shared.supervision import Supervisor
from bento.application.retry import RetryPolicy
from bento.application.serialization import JsonCodec

if TYPE_CHECKING:
    from bento.adapters.pulsar._producers import ProducerPool


@dataclass
class Runtime:
    """The started bus's moving parts, handed to producers and subscriptions."""

    client: pulsar.Client
    settings: PulsarSettings
    codec: JsonCodec
    policy: RetryPolicy
    bridge: LoopBridge
    calls: ClientCalls
    metrics: BusCounters
    producers: ProducerPool
    supervisor: Supervisor
