"""Settings of the NATS JetStream MessageBus.

Everything the adapter creates on the server (the stream, its dead-letter stream, the
consumers) is derived from these fields, so two services with the same settings agree
on subjects and consumer names without talking to each other.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from bento.adapters.shared.settings_base import MessageBusSettingsBase
from bento.application.credentials import SecretUrl

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


class NatsSettings(MessageBusSettingsBase):
    """Connection, stream and consumer settings (`EVENT__BACKEND=nats`).

    `partitions` is part of the wire layout (`{subject_prefix}.p{n}.{topic}`): every
    publisher and ordered subscriber of one stream must use the same value.
    """

    backend: Literal["nats"] = "nats"
    servers: list[SecretUrl] = Field(
        default_factory=lambda: [SecretUrl("nats://127.0.0.1:4222")],
        min_length=1,
        description="server URLs; credentials in them (nats://user:pw@… or nats://token@…) are never shown",
    )
    name: str = Field("bento", description="connection name shown by the server's monitoring")
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    connect_timeout: float = Field(
        2.0, gt=0, description="seconds each server gets to answer the first connect (unreachable is said this fast)"
    )
    reconnect_wait: float = Field(2.0, ge=0, description="seconds between reconnect attempts")
    max_reconnect_attempts: int = Field(-1, ge=-1, description="-1 (default) retries forever")

    # -- stream ---------------------------------------------------------------------------
    stream_name: str = "BENTO"
    subject_prefix: str = Field("bento", description="first subject token; the stream captures `{prefix}.>`")
    storage: Literal["file", "memory"] = "file"
    replicas: int = Field(1, ge=1, le=5)
    max_age: float | None = Field(None, gt=0, description="seconds a message is retained (None: forever)")
    max_bytes: int | None = Field(None, gt=0)
    max_msgs: int | None = Field(None, gt=0)
    duplicate_window: float = Field(120.0, gt=0, description="Nats-Msg-Id de-duplication window, seconds")
    dead_letter_max_age: float | None = Field(None, gt=0, description="retention of dead letters, seconds")
    unrouted_sweep_interval: float | None = Field(
        60.0,
        gt=0,
        description="seconds between sweeps that dead-letter messages stored on subjects outside the layout "
        "(None: never)",
    )

    # -- consumers ------------------------------------------------------------------------
    partitions: int = Field(16, ge=1, le=1024, description="subject partitions for per-key order")
    fetch_batch: int = Field(128, ge=1, description="messages per pull request (unordered subscriptions)")
    fetch_timeout: float = Field(2.0, gt=0, description="expiry of a pull request; bounds how long cancel waits")
    concurrency: int = Field(1, ge=1, description="pullers (handlers at once) per unordered subscriber")
    max_ack_pending: int = Field(1000, ge=1, description="unacked messages a group may hold (unordered)")
    ack_wait_margin: float = Field(30.0, gt=0, description="ack_wait = handler_timeout + this margin")
    new_group_start: Literal["new", "all"] = Field(
        "new", description="where a group that does not exist yet starts: new messages, or the whole stream"
    )
    publish_timeout: float = Field(5.0, gt=0, description="seconds to wait for the stream's PubAck")

    @field_validator("stream_name")
    @classmethod
    def _stream_name_is_a_name(cls, value: str) -> str:
        if not _TOKEN.match(value):
            raise ValueError("stream_name may hold only letters, digits, '_' and '-'")
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _prefix_is_one_token(cls, value: str) -> str:
        if not _TOKEN.match(value):
            raise ValueError("subject_prefix must be one subject token (letters, digits, '_' and '-')")
        return value

    @property
    def address(self) -> str:
        """The servers for messages and logs, credentials masked."""
        return ",".join(str(server) for server in self.servers)

    def server_urls(self) -> list[str]:
        """The real server URLs, credentials included: only for connecting."""
        return [server.get_secret_value() for server in self.servers]

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.stream_name}_DLQ"

    @property
    def dead_letter_prefix(self) -> str:
        return f"{self.subject_prefix}_dlq"

    @property
    def ack_wait(self) -> float:
        return self.handler_timeout + self.ack_wait_margin
