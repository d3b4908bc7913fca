"""Settings of the Redis package: the MessageBus (durable Streams or broadcast pub/sub), the
stores (inbox, checkpoints), the stream lock, the channel and the work queue. No client needed."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from bento.adapters.shared.settings_base import BackendSettings, MessageBusSettingsBase
from bento.application.credentials import SecretUrl


class RedisSettings(MessageBusSettingsBase):
    """`mode="durable"` (default) uses Redis Streams and consumer groups: at-least-once,
    retries, dead letters, per-key order. `mode="broadcast"` uses Redis pub/sub under
    `key_prefix` (seed 001's redis event backend): at-most-once, nothing is kept.

    Publishers and consumers of one topic must agree on `key_prefix` and `partitions`."""

    backend: Literal["redis"] = "redis"
    url: SecretUrl = SecretUrl("redis://127.0.0.1:6379/0")
    key_prefix: str = "bento:"
    mode: Literal["durable", "broadcast"] = "durable"
    max_connections: int = Field(
        100,
        ge=4,
        description="size of the bus's connection pool (when it makes its client); beyond it callers wait "
        "for a connection instead of failing",
    )
    publish_pipelines: int = Field(
        4,
        ge=1,
        description="publish round trips in flight at once; publishes made meanwhile queue and share the "
        "next one (one connection each)",
    )

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
    connection_check_interval: float = Field(
        2.0, gt=0, description="seconds between PINGs that detect a lost and restored server (callbacks)"
    )

    # -- broadcast mode ---------------------------------------------------------------
    queue_size: int = Field(
        10_000,
        ge=1,
        description="broadcast mode: messages buffered per subscriber; when full the oldest is dropped "
        "(and counted), because pub/sub is at-most-once and a slow subscriber must not stall the others",
    )


class RedisStoreSettings(BackendSettings):
    """Connection and key layout shared by the Redis inbox and checkpoint store."""

    backend: Literal["redis"] = "redis"
    url: SecretUrl = SecretUrl("redis://127.0.0.1:6379/0")
    key_prefix: str = "bento:"
    retention: int | None = Field(7 * 24 * 3600, ge=1, description="seconds an inbox id is remembered")


class RedisStreamLockSettings(BackendSettings):
    """A lease per stream in Redis: excludes concurrent appends across processes."""

    backend: Literal["redis"] = "redis"
    url: SecretUrl = SecretUrl("redis://127.0.0.1:6379/0")


class RedisChannelSettings(BackendSettings):
    backend: Literal["redis"] = "redis"
    url: SecretUrl = SecretUrl("redis://127.0.0.1:6379/0")
    key_prefix: str = "channel:"
    queue_size: int = Field(1000, ge=1, description="messages queued per subscriber; beyond it the oldest is dropped")


class RedisWorkQueueSettings(BackendSettings):
    """Connection and consumer knobs; `claim_idle_ms` must exceed `handler_timeout`, so that
    a live consumer's entry is never taken over while its handler still runs."""

    backend: Literal["redis"] = "redis"
    url: SecretUrl = SecretUrl("redis://127.0.0.1:6379/0")
    key_prefix: str = "mq:"
    group: str = Field("workers", min_length=1, description="consumer group shared by every consumer")
    max_connections: int = Field(10, ge=2, description="pool size; callers wait when all are busy")
    prefetch_count: int = Field(10, ge=1, description="entries read per XREADGROUP, handled concurrently")
    block_ms: int = Field(1000, ge=10, description="longest XREADGROUP wait; bounds how long cancel takes")
    claim_idle_ms: int = Field(120_000, ge=100, description="pending this long = its consumer died")
    claim_interval: float = Field(5.0, gt=0, description="seconds between sweeps for dead consumers' entries")
    max_deliveries: int = Field(5, ge=1, description="take-overs before an entry is dead-lettered")
    handler_timeout: float = Field(60.0, gt=0, description="a handler running longer counts as failed")
    drain_timeout: float = Field(10.0, ge=0, description="seconds cancel() waits for running handlers")
    dead_letter_suffix: str = Field(".dlq", min_length=1)
    maxlen: int | None = Field(None, ge=1, description="approximate MAXLEN of queue streams (None: unbounded)")

    @model_validator(mode="after")
    def _claim_after_timeout(self) -> Self:
        if self.claim_idle_ms <= self.handler_timeout * 1000:
            raise ValueError("claim_idle_ms must be greater than handler_timeout (in ms)")
        return self


class RedisCacheSettings(BackendSettings):
    """A cache shared by every process on one Redis: values under `{key_prefix}v:`, the LRU
    order and expiry times in two sorted sets beside them (see RedisCache)."""

    backend: Literal["redis"] = "redis"
    url: SecretUrl = SecretUrl("redis://127.0.0.1:6379/0")
    key_prefix: str = "cache:default:"
    max_size: int = Field(10_000, ge=1, description="entries kept; beyond it the least recently used is evicted")
    default_ttl: float | None = Field(None, gt=0, description="seconds an entry lives when set without a ttl")
