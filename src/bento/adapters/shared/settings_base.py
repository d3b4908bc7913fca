"""The base of every backend's settings, and the fields every MessageBus adapter shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from bento.application.retry import RetryPolicy


class BackendSettings(BaseModel):
    """Settings of one backend of a port: what the catalogue knows of every member of a port's
    settings union. Each subclass declares `backend` as a one-value Literal of its catalogue
    row's name (the union's discriminator); code that only needs the name reads it here."""

    # Validation errors never echo the input: it may be a URL with a password in it.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    if TYPE_CHECKING:
        backend: str


class MessageBusSettingsBase(BackendSettings):
    """Fields common to every message bus backend's settings (retry and dead-letter policy)."""

    max_attempts: int = Field(5, ge=1, description="deliveries before a message is dead-lettered")
    retry_delays: list[float] = Field(
        default_factory=lambda: [0.5, 2.0, 10.0], description="seconds to wait before each redelivery"
    )
    handler_timeout: float = Field(300.0, gt=0, description="a handler running longer counts as failed")
    drain_timeout: float = Field(
        10.0,
        ge=0,
        description="seconds close() waits for handlers already running; then they are cancelled. Messages "
        "received but not yet started are not waited for (brokers redeliver them; in-process ones are dropped)",
    )
    max_message_bytes: int = Field(
        1_048_576,
        ge=1,
        description="largest encoded message body: publish refuses a larger one (MessageTooLargeError) and "
        "consumers dead-letter one sent by another producer. 1 MiB fits every broker's own limit (NATS "
        "max_payload is 1 MiB by default, Pulsar's maxMessageSize 5 MB, RabbitMQ's 128 MiB)",
    )

    wire_format: Literal["bento", "cloudevents-binary", "cloudevents-structured"] = Field(
        "bento",
        description="how published messages look on the wire (docs/wire-format.md); consumers accept all three",
    )
    metadata_headers: bool = Field(
        True,
        description="send the metadata (id, type, version, timestamp, correlation, trace) as transport headers "
        "in the bento format too; they cost per message (NATS: about a fifth of publish throughput in "
        "benchmarks/nats.py), and the body carries the same facts",
    )
    cloudevents_source: str = Field(
        "bento-service", min_length=1, description="the CloudEvents `source` attribute: the service's name"
    )
    request_timeout: float = Field(
        30.0,
        gt=0,
        description="seconds a remote CommandBus.dispatch or QueryBus.ask waits for the reply before raising "
        "CommandTimeoutError (COMMAND__REQUEST_TIMEOUT; a `timeout=` argument overrides it per call)",
    )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, delays=tuple(self.retry_delays))
