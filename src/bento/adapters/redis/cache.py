"""RedisCache: the Cache port on Redis, shared by every process that uses the same prefix.

Each operation is one Lua script (`_cache_scripts`), so a batch (`get_many`, `set_many`) is
one round trip and the LRU bookkeeping stays consistent however many processes write. The
size bound is enforced exactly, least recently used first, whatever the server's
`maxmemory-policy`; TTLs are Redis's own (PX) plus a deadline set for counting. Hits, misses,
evictions and expirations are counted by this process; `size` is the shared entry count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bento.application.errors import MissingExtraError

try:
    from redis.asyncio import Redis
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("Redis cache", "redis", "redis") from exc

from bento.adapters.redis import _cache_scripts as scripts
from bento.adapters.redis._errors import RedisError, checked_client, unavailable
from bento.adapters.redis._keys import escape_glob
from bento.adapters.redis.settings import RedisCacheSettings
from bento.application.credentials import mask_url
from bento.application.ports.cache import CacheStats
from bento.application.ports.capabilities import HealthStatus

#: Keys per script call in delete_prefix, so one call never blocks Redis for long.
_BATCH = 500


class RedisCache:
    """See the module docstring. `client` shares an existing redis.asyncio client (not closed here)."""

    def __init__(self, settings: RedisCacheSettings | None = None, *, client: Redis | None = None) -> None:
        self.settings = settings or RedisCacheSettings()
        self._client, self._owns_client = client, client is None
        prefix = self.settings.key_prefix
        self._keys = [f"{prefix}lru", f"{prefix}exp", f"{prefix}seq"]
        self._values = f"{prefix}v:"
        self._where = mask_url(self.settings.url.get_secret_value())
        self._scripts: dict[str, Any] = {}
        self._hits = self._misses = self._evictions = self._expired = 0

    @property
    def max_size(self) -> int:
        return self.settings.max_size

    async def start(self) -> None:
        """Connect and check Redis answers (BrokerUnavailableError otherwise)."""
        if self._scripts:
            return
        client = await checked_client(self.settings.url.get_secret_value(), self._client)
        self._client = client
        self._scripts = {
            name: client.register_script(getattr(scripts, name)) for name in ("GET", "SET", "DELETE", "SIZE", "CLEAR")
        }

    async def _run(self, name: str, *args: Any) -> Any:
        if not self._scripts:
            await self.start()
        try:
            return await self._scripts[name](keys=self._keys, args=[self._values, *args])
        except RedisError as exc:
            raise unavailable(self._where, exc) from exc

    def _ttl_ms(self, ttl: float | None) -> int:
        ttl = self.settings.default_ttl if ttl is None else ttl
        return 0 if ttl is None else math.ceil(ttl * 1000)

    async def get(self, key: str) -> bytes | None:
        return (await self.get_many([key])).get(key)

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        if not keys:
            return {}
        expired, values = await self._run("GET", *keys)
        self._expired += int(expired)
        found = {key: _bytes(value) for key, value in zip(keys, values, strict=True) if value is not None}
        self._hits += len(found)
        self._misses += len(keys) - len(found)
        return found

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self.set_many({key: value}, ttl)

    async def set_many(self, values: Mapping[str, bytes], ttl: float | None = None) -> None:
        if not values:
            return
        ttl_ms = self._ttl_ms(ttl)
        if ttl is not None and ttl <= 0:  # already expired: stores nothing
            await self._delete(list(values))
            return
        args: list[Any] = [self.settings.max_size]
        for key, value in values.items():
            args.extend((key, bytes(value), ttl_ms))
        expired, evicted = await self._run("SET", *args)
        self._expired += int(expired)
        self._evictions += int(evicted)

    async def delete(self, key: str) -> bool:
        return await self._delete([key]) > 0

    async def _delete(self, keys: Sequence[str]) -> int:
        expired, removed = await self._run("DELETE", *keys)
        self._expired += int(expired)
        return int(removed)

    async def delete_prefix(self, prefix: str) -> int:
        if not self._scripts:
            await self.start()
        assert self._client is not None
        found: list[str] = []
        try:
            async for member, _ in self._client.zscan_iter(self._keys[0], match=escape_glob(prefix) + "*"):
                found.append(_bytes(member).decode())
        except RedisError as exc:
            raise unavailable(self._where, exc) from exc
        removed = 0
        for start in range(0, len(found), _BATCH):
            removed += await self._delete(found[start : start + _BATCH])
        return removed

    async def clear(self) -> None:
        await self._run("CLEAR")

    async def stats(self) -> CacheStats:
        expired, size = await self._run("SIZE")
        self._expired += int(expired)
        return CacheStats(self._hits, self._misses, self._evictions, self._expired, int(size))

    async def health_check(self) -> HealthStatus:
        import time

        started = time.perf_counter()
        try:
            if not self._scripts:
                await self.start()
            assert self._client is not None
            await self._client.ping()
        except Exception as exc:  # a health check reports failures, it does not raise them
            return HealthStatus(False, "cache:redis", (time.perf_counter() - started) * 1000, f"{exc}")
        return HealthStatus(True, "cache:redis", (time.perf_counter() - started) * 1000)

    async def close(self) -> None:
        client, self._scripts = self._client, {}
        if client is not None and self._owns_client:
            self._client = None
            await client.aclose()

    async def __aenter__(self) -> RedisCache:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _bytes(value: bytes | str) -> bytes:
    # A shared client may decode responses (decode_responses=True): values come back as str.
    return value.encode() if isinstance(value, str) else bytes(value)
