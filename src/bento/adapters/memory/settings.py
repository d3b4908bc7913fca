"""Settings of the in-process MessageBus."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bento.adapters.shared.settings_base import MessageBusSettingsBase


class InProcessSettings(MessageBusSettingsBase):
    """`backend: memory` is seed 000's name for the same thing."""

    backend: Literal["inprocess", "memory"] = "inprocess"
    queue_size: int = Field(10_000, ge=1, description="messages buffered per subscription before publish waits")
    concurrency: int = Field(1, ge=1, description="handlers running at once per subscriber")
