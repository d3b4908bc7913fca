"""Connection settings for ClickHouse (server or embedded). Extend freely."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr


class ClickHouseSettings(BaseModel):
    """`mode: embedded` runs the chdb engine in-process on `path`; `server` connects over
    the native protocol to `host:port`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["embedded", "server"] = "embedded"
    path: str = ".bento/clickhouse"
    host: str = "127.0.0.1"
    port: int = 9000
    database: str = "bento"
    user: str = "default"
    password: SecretStr = SecretStr("")
