"""Connection settings for ClickHouse (server or embedded)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ClickHouseSettings(BaseModel):
    """`mode: embedded` runs the chdb engine in-process on `path`; `server` connects over
    the native protocol to `host:port`. `pool_size` is the number of worker threads
    (and, for the server, driver clients) that run blocking calls off the event loop."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    mode: Literal["embedded", "server"] = "embedded"
    path: str = ".bento/clickhouse"
    host: str = "127.0.0.1"
    port: int = 9000
    database: str = "bento"
    user: str = "default"
    password: SecretStr = SecretStr("")
    pool_size: int = Field(default=4, ge=1, le=64)
    connect_timeout: float = Field(default=5.0, gt=0)
    #: Bounds one statement's round trip (server); a stalled insert fails instead of hanging.
    send_receive_timeout: float = Field(default=60.0, gt=0)
