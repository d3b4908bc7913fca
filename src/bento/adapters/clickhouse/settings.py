"""Settings of the ClickHouse package: the connection (server or embedded) and each store on it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bento.adapters.shared.settings_base import BackendSettings


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


class _ClickHouseStore(BackendSettings):
    """A store on the engine the `clickhouse` section describes."""

    backend: Literal["clickhouse"] = "clickhouse"


class ClickHouseEventStoreSettings(_ClickHouseStore):
    """The event store's table and its write path (see docs/eventstore.md)."""

    table: str = "events"
    group_commit_window_ms: float = Field(2.0, ge=0, description="how long an append waits to share a commit")
    group_commit_max_events: int = Field(10_000, ge=1)
    version_cache_size: int = Field(100_000, ge=1, description="stream versions kept in memory per store")


class ClickHouseReadModelSettings(_ClickHouseStore):
    """One table per read-model record type."""


class ClickHouseCheckpointStoreSettings(_ClickHouseStore):
    """Projection and relay checkpoints in a ClickHouse table."""


class ClickHouseInboxSettings(_ClickHouseStore):
    """`INBOX__BACKEND=clickhouse`: processed message ids in a ClickHouse table (a claim per
    delivery; see bento.adapters.clickhouse.inbox for what it settles and what it cannot)."""

    table: str = "bento_inbox"


class ClickHouseSnapshotStoreSettings(_ClickHouseStore):
    """Aggregate snapshots in a ClickHouse table."""


class ClickHouseSingleWriterSettings(BackendSettings):
    """`STREAM_LOCK__BACKEND=single-writer`: one process writes a ClickHouse server store,
    holding a lease in ClickHouse itself; a second writer fails before it commits. Every
    writer of one table must use the same `lease`."""

    backend: Literal["single-writer"] = "single-writer"
    lease: float = Field(10.0, ge=4, description="seconds a writer's lease lasts without a heartbeat")
