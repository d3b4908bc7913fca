"""Settings of the memory package: the in-process MessageBus and every in-memory store."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bento.adapters.shared.settings_base import BackendSettings, MessageBusSettingsBase


class InProcessSettings(MessageBusSettingsBase):
    """One event loop's topics, groups and patterns (`memory` is accepted as an alias)."""

    backend: Literal["inprocess"] = "inprocess"
    queue_size: int = Field(10_000, ge=1, description="messages buffered per subscription before publish waits")
    concurrency: int = Field(1, ge=1, description="handlers running at once per subscriber")


class _MemoryStore(BackendSettings):
    backend: Literal["memory"] = "memory"


class MemoryEventStoreSettings(_MemoryStore):
    """Events in a list of this process: for tests and demos (gone at exit)."""


class MemoryReadModelSettings(_MemoryStore):
    """Read models in dicts of this process."""


class MemoryCheckpointStoreSettings(_MemoryStore):
    """Checkpoints in a dict of this process: projections start over after a restart."""


class MemorySnapshotStoreSettings(_MemoryStore):
    """Snapshots in a dict of this process (a cache: losing them only costs a replay)."""


class MemoryInboxSettings(_MemoryStore):
    """Processed ids in a set of this process: enough for one consumer process."""


class InProcessStreamLockSettings(BackendSettings):
    """Per-stream asyncio locks: excludes concurrent appends within one process only."""

    backend: Literal["inprocess"] = "inprocess"


class InMemoryChannelSettings(BackendSettings):
    backend: Literal["memory"] = "memory"
    queue_size: int = Field(1000, ge=1, description="messages queued per subscriber; beyond it the oldest is dropped")


class InMemoryCacheSettings(BackendSettings):
    """A cache in this process: LRU eviction beyond `max_size` entries, per-entry TTL."""

    backend: Literal["memory"] = "memory"
    max_size: int = Field(10_000, ge=1, description="entries kept; beyond it the least recently used is evicted")
    default_ttl: float | None = Field(None, gt=0, description="seconds an entry lives when set without a ttl")
