"""Settings of the Redis MessageBus (extend freely; keep `backend`)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from bento.adapters.messaging.settings_base import MessageBusSettingsBase


class RedisSettings(MessageBusSettingsBase):
    backend: Literal["redis"] = "redis"
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    key_prefix: str = "bento:"
    mode: Literal["durable", "broadcast"] = "durable"
