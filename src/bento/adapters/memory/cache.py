"""InMemoryCache: the Cache port in this process, on cachetools' TLRUCache.

TLRUCache gives both policies at once: a size bound with least-recently-used eviction, and a
time-to-use per entry (each entry carries its own deadline, so `set(..., ttl=…)` works per
key). Evictions are counted by overriding `popitem` (what the cache calls when full) and
expirations by overriding `expire`. Everything runs on the caller's event loop; nothing blocks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cachetools import TLRUCache

from bento.adapters.memory.settings import InMemoryCacheSettings
from bento.application.ports.cache import CacheStats
from bento.application.ports.capabilities import HealthStatus

_Entry = tuple[float, bytes]  # (deadline on the monotonic clock, value)


def _deadline(key: str, entry: _Entry, now: float) -> float:
    return entry[0]


class _CountingCache(TLRUCache[str, _Entry]):
    def __init__(self, maxsize: int, timer: Any) -> None:
        super().__init__(maxsize, _deadline, timer=timer)
        self.evictions = 0
        self.expired = 0

    def popitem(self) -> tuple[str, _Entry]:
        item = super().popitem()
        self.evictions += 1
        return item

    def expire(self, time: float | None = None) -> list[tuple[str, _Entry]]:
        gone = super().expire(time)
        self.expired += len(gone)
        return gone


class InMemoryCache:
    """See the module docstring. `timer` (monotonic seconds) is injectable for tests."""

    def __init__(self, settings: InMemoryCacheSettings | None = None, *, timer: Any = time.monotonic) -> None:
        self.settings = settings or InMemoryCacheSettings()
        self._timer = timer
        self._entries = _CountingCache(self.settings.max_size, timer)
        self._hits = self._misses = 0

    @property
    def max_size(self) -> int:
        return self.settings.max_size

    def _deadline_for(self, ttl: float | None) -> float:
        ttl = self.settings.default_ttl if ttl is None else ttl
        return math.inf if ttl is None else self._timer() + ttl

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            self._misses += 1
            return None
        self._hits += 1
        return entry[1]

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self.set_many({key: value}, ttl)

    async def delete(self, key: str) -> bool:
        return self._entries.pop(key, None) is not None

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for key in keys:
            value = await self.get(key)
            if value is not None:
                found[key] = value
        return found

    async def set_many(self, values: Mapping[str, bytes], ttl: float | None = None) -> None:
        deadline = self._deadline_for(ttl)
        for key, value in values.items():
            if ttl is not None and ttl <= 0:  # already expired: stores nothing (TLRUCache would skip it)
                self._entries.pop(key, None)
            else:
                self._entries[key] = (deadline, bytes(value))

    async def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in list(self._entries.keys()) if key.startswith(prefix)]
        for key in doomed:
            self._entries.pop(key, None)
        return len(doomed)

    async def clear(self) -> None:
        self._entries.clear()

    async def stats(self) -> CacheStats:
        self._entries.expire()
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            evictions=self._entries.evictions,
            expired=self._entries.expired,
            size=len(self._entries),
        )

    async def health_check(self) -> HealthStatus:
        return HealthStatus(True, "cache:memory")

    async def close(self) -> None:
        self._entries.clear()

    async def __aenter__(self) -> InMemoryCache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
