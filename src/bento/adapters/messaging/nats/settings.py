"""Settings of the NATS JetStream MessageBus (extend freely; keep `backend`)."""

from __future__ import annotations

from typing import Literal

from bento.adapters.messaging.settings_base import MessageBusSettingsBase


class NatsSettings(MessageBusSettingsBase):
    backend: Literal["nats"] = "nats"
    servers: list[str] = ["nats://127.0.0.1:4222"]
    stream_name: str = "BENTO"
