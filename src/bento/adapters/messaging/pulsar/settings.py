"""Settings of the Pulsar MessageBus (extend freely; keep `backend`)."""

from __future__ import annotations

from typing import Literal

from bento.adapters.messaging.settings_base import MessageBusSettingsBase


class PulsarSettings(MessageBusSettingsBase):
    backend: Literal["pulsar"] = "pulsar"
    service_url: str = "pulsar://127.0.0.1:6650"
    tenant: str = "public"
    namespace: str = "default"
