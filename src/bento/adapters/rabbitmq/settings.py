"""Settings of the RabbitMQ MessageBus and work queues (one model for both).

Selected as backend `rabbitmq` for any named instance, e.g.
`EVENT__DOMAIN__BACKEND=rabbitmq`, `EVENT__DOMAIN__URL=amqp://…`,
`EVENT__DOMAIN__EXCHANGE_NAME=domain.events`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from bento.adapters.shared.settings_base import MessageBusSettingsBase
from bento.application.credentials import SecretUrl


class RabbitMQSettings(MessageBusSettingsBase):
    """Connection, topology and delivery knobs for RabbitMQ.

    `exchange_type` is limited to the built-in types on purpose: declaring an
    exchange type the broker does not know closes the whole AMQP connection, not
    just the channel, so a typo would take every consumer down with it.
    """

    backend: Literal["rabbitmq"] = "rabbitmq"
    url: SecretUrl = SecretUrl("amqp://guest:guest@127.0.0.1:5672/")
    exchange_name: str = "bento.events"
    exchange_type: Literal["topic", "direct", "fanout", "headers"] = "topic"
    prefetch_count: int = Field(64, ge=1, description="unacknowledged deliveries per subscription")

    # -- connection -------------------------------------------------------------------
    connection_name: str = Field("bento", description="shown by rabbitmqctl list_connections")
    heartbeat: int = Field(60, ge=0, description="AMQP heartbeat in seconds (0 disables)")
    connect_timeout: float = Field(10.0, gt=0)
    reconnect_interval: float = Field(1.0, gt=0, description="seconds between reconnect attempts")
    ssl_ca_file: str | None = Field(None, description="CA bundle for amqps:// (system CAs when unset)")
    ssl_cert_file: str | None = Field(None, description="client certificate for mutual TLS")
    ssl_key_file: str | None = Field(None, description="client private key for mutual TLS")
    ssl_verify: bool = Field(True, description="verify the broker certificate and host name")

    # -- publishing -------------------------------------------------------------------
    publish_timeout: float = Field(30.0, gt=0, description="how long publish waits for a confirm, reconnects included")
    publish_window: int = Field(1000, ge=1, description="unconfirmed messages in flight per publish_batch")

    # -- topology ---------------------------------------------------------------------
    queue_type: Literal["classic", "quorum"] = Field(
        "classic", description="type of group queues and dead-letter queues"
    )
    queue_expires: float | None = Field(
        None, gt=0, description="seconds an unused group queue and its DLQ live (x-expires); None keeps them"
    )
    dead_letter_suffix: str = Field(".dlq", min_length=1, description="DLQ name = subscription queue + suffix")
    retry_exchange_prefix: str = Field(
        "bento.retry", min_length=1, description="per-delay retry exchanges/queues are `<exchange>/<prefix>.<ms>ms`"
    )
    broadcast_prefix: str = Field("_broadcast", min_length=1, description="name part of group=None queues")
    legacy_queue_names: bool = Field(
        False,
        description="keep the unscoped queue names of earlier versions, shared by every application on the "
        "vhost (cross-talk); one deployment only, while migrating (docs/rabbitmq.md); warns at every start",
    )
    health_check_timeout: float = Field(5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _amqp_scheme(cls, value: SecretUrl) -> SecretUrl:
        if not value.get_secret_value().startswith(("amqp://", "amqps://")):
            raise ValueError("url must start with amqp:// or amqps://")
        return value
