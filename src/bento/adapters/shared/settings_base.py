"""Settings every MessageBus adapter shares (retry and dead-letter policy)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bento.application.retry import RetryPolicy


class MessageBusSettingsBase(BaseModel):
    """Fields common to every backend's settings; subclasses add `backend` and their own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(5, ge=1, description="deliveries before a message is dead-lettered")
    retry_delays: list[float] = Field(
        default_factory=lambda: [0.5, 2.0, 10.0], description="seconds to wait before each redelivery"
    )
    handler_timeout: float = Field(300.0, gt=0, description="a handler running longer counts as failed")
    drain_timeout: float = Field(10.0, ge=0, description="seconds close() waits for in-flight handlers")

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, delays=tuple(self.retry_delays))
