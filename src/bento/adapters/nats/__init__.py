"""Nats MessageBus adapter (extra: bento-ddd[nats]).

Settings import without the client; the adapter class imports it (see `bento.adapters.shared.lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bento.adapters.nats.settings import NatsSettings
from bento.adapters.shared.lazy import lazy_classes

if TYPE_CHECKING:
    from bento.adapters.nats.message_bus import NatsMessageBus

__all__ = ["NatsMessageBus", "NatsSettings"]

__getattr__ = lazy_classes(
    __name__, adapter="Nats", extra="nats", client="nats", classes={"NatsMessageBus": ".message_bus"}
)
