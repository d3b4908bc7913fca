"""Pulsar MessageBus adapter (extra: bento-ddd[pulsar]).

Settings import without the client; the adapter class imports it (see `bento.adapters._lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bento.adapters._lazy import lazy_classes
from bento.adapters.messaging.pulsar.settings import PulsarSettings

if TYPE_CHECKING:
    from bento.adapters.messaging.pulsar.message_bus import PulsarMessageBus

__all__ = ["PulsarMessageBus", "PulsarSettings"]

__getattr__ = lazy_classes(
    __name__, adapter="Pulsar", extra="pulsar", client="pulsar", classes={"PulsarMessageBus": ".message_bus"}
)
