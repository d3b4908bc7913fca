"""Settings of the RabbitMQ MessageBus (extend freely; keep `backend`)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from bento.adapters.messaging.settings_base import MessageBusSettingsBase


class RabbitMQSettings(MessageBusSettingsBase):
    backend: Literal["rabbitmq"] = "rabbitmq"
    url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    exchange_name: str = "bento.events"
    exchange_type: str = "topic"
    prefetch_count: int = 64
