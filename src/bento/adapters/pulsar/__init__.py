"""Pulsar MessageBus adapter (extra: bento-ddd[pulsar]).

Settings import without the client; the adapter class imports it (see `bento.adapters.shared.lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bento.adapters.pulsar.settings import PulsarSettings
from bento.adapters.shared.lazy import lazy_classes

if TYPE_CHECKING:
    from bento.adapters.pulsar.message_bus import PulsarMessageBus

__all__ = ["PulsarMessageBus", "PulsarSettings"]

__getattr__ = lazy_classes(
    __name__, adapter="Pulsar", extra="pulsar", client="pulsar", classes={"PulsarMessageBus": ".message_bus"}
)
