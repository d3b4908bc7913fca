"""Kafka MessageBus adapter (extra: bento-ddd[kafka], aiokafka).

Settings import without the client; the adapter class imports it (see `bento.adapters.shared.lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bento.adapters.kafka.settings import KafkaSettings
from bento.adapters.shared.lazy import lazy_classes

if TYPE_CHECKING:
    from bento.adapters.kafka.message_bus import KafkaMessageBus

__all__ = ["KafkaMessageBus", "KafkaSettings"]

__getattr__ = lazy_classes(
    __name__, adapter="Kafka", extra="kafka", client="aiokafka", classes={"KafkaMessageBus": ".message_bus"}
)
