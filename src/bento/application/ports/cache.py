"""Cache: a bounded key-value cache of encoded values (what CacheManager and `@cached` use).

Values are bytes: callers encode them (JSON through pydantic, never pickle), so nothing read
back from a cache is ever executed, and every backend holds exactly the same data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from bento.application.ports.capabilities import HealthStatus


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of one cache as seen by this process: `hits` and `misses` of `get`/`get_many`,
    `evictions` (entries removed to respect `max_size`, least recently used first), `expired`
    (entries whose TTL ran out and were removed) and `size` (live entries now, which for a
    shared backend counts every process's entries)."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    expired: int = 0
    size: int = 0

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain values by name, for a metrics exporter."""
        return {**asdict(self), "hit_ratio": self.hit_ratio}


class Cache(Protocol):
    """A cache of encoded values with a size bound, LRU eviction and per-entry TTL.

    `set(key, value, ttl=None)` stores `value` for `ttl` seconds (None: the backend's
    default TTL, which may be none); after that `get` returns None. A `ttl` of zero or less
    stores nothing and removes the key's entry. When an entry is added
    beyond `max_size`, the least recently used entries (read or written last the longest
    ago) are evicted and counted. `get_many`/`set_many` do a whole batch in one round trip.
    `delete_prefix(prefix)` removes every entry whose key starts with `prefix` (how a
    function's whole namespace is invalidated). `clear()` empties this cache only (other
    caches sharing a server keep their keys). Backend failures raise BrokerUnavailableError.
    """

    @property
    def max_size(self) -> int: ...

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> bool:
        """True when an entry was removed."""
        ...

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The entries found, by key (missing and expired keys are absent)."""
        ...

    async def set_many(self, values: Mapping[str, bytes], ttl: float | None = None) -> None: ...

    async def delete_prefix(self, prefix: str) -> int:
        """How many entries were removed."""
        ...

    async def clear(self) -> None: ...

    async def stats(self) -> CacheStats: ...

    async def health_check(self) -> HealthStatus: ...

    async def close(self) -> None: ...
