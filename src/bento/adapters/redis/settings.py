"""Settings of the Redis MessageBus (durable Streams mode and broadcast pub/sub mode)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from bento.adapters.shared.settings_base import MessageBusSettingsBase


class RedisSettings(MessageBusSettingsBase):
    """`mode="durable"` (default) uses Redis Streams and consumer groups: at-least-once,
    retries, dead letters, per-key order. `mode="broadcast"` uses Redis pub/sub under
    `key_prefix` (seed 001's redis event backend): at-most-once, nothing is kept.

    Publishers and consumers of one topic must agree on `key_prefix` and `partitions`."""

    backend: Literal["redis"] = "redis"
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    key_prefix: str = "bento:"
    mode: Literal["durable", "broadcast"] = "durable"

    # -- durable mode -----------------------------------------------------------------
    partitions: int = Field(
        1,
        ge=1,
        le=1024,
        description="streams per topic; messages go to crc32(key) % partitions (per-key order needs > 1 "
        "to spread an ordered group over several members)",
    )
    batch_size: int = Field(100, ge=1, description="entries fetched per XREADGROUP / XAUTOCLAIM (COUNT)")
    block_ms: int = Field(1000, ge=1, description="how long one XREADGROUP waits for new entries (BLOCK)")
    concurrency: int = Field(1, ge=1, description="handlers running at once per subscriber (unordered only)")
    claim_idle_ms: int = Field(
        30_000,
        ge=100,
        description="a pending entry idle this long belongs to a dead consumer and is reclaimed "
        "(XAUTOCLAIM); live consumers refresh their in-flight entries so they are never stolen",
    )
    claim_interval: float = Field(5.0, gt=0, description="seconds between reclaim sweeps of each subscriber")
    maxlen: int | None = Field(
        None, ge=1, description="approximate MAXLEN trimming of topic streams on XADD (None keeps all)"
    )
    partition_lease_ms: int = Field(
        5000, ge=200, description="lease of one ordered partition; a dead owner's lease expires after this"
    )
    pattern_refresh: float = Field(
        0.5, gt=0, description="seconds between looks at the topic registry for pattern subscriptions"
    )

    # -- broadcast mode ---------------------------------------------------------------
    queue_size: int = Field(
        10_000,
        ge=1,
        description="broadcast mode: messages buffered per subscriber; when full the oldest is dropped "
        "(and counted), because pub/sub is at-most-once and a slow subscriber must not stall the others",
    )
