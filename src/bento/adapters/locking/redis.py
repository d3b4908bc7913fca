"""RedisStreamLock: a StreamLock shared by every process that reaches one Redis.

Each stream is a key `<prefix><stream>` set with `SET NX PX`-semantics to a random
token. `hold(streams)` takes ALL its keys in one Lua call or none of them, so two
holders of overlapping sets can never deadlock (nobody holds some keys while
waiting for others); a holder that finds a key taken retries with a short jittered
back-off until `timeout`.

Leases and fencing: a key expires after `lease` seconds, so a crashed holder frees
its streams by itself. While the body runs, a renewal task extends the lease every
`lease / 3` seconds (token-checked), so a live holder never loses it to expiry.
Release is token-checked too: a holder never deletes a lock another holder now owns.
If renewal finds the lock gone (the process was frozen past its lease), the lock is
marked lost and the loss is logged; callers that write under the lock bound their own
critical section well below the lease (ClickHouseEventStore's `max_commit_seconds`).
Extra: `bento-ddd[redis]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any, Self

from bento.application.errors import BrokerUnavailableError, LockTimeoutError, MissingExtraError

try:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError("Redis stream lock", "redis", "redis") from exc

logger = logging.getLogger(__name__)

_ACQUIRE = """
for _, key in ipairs(KEYS) do
    if redis.call('EXISTS', key) == 1 then return 0 end
end
for _, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
end
return 1
"""

_RENEW = """
local kept = 0
for _, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then
        redis.call('PEXPIRE', key, ARGV[2])
        kept = kept + 1
    end
end
return kept
"""

_RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then
        redis.call('DEL', key)
        released = released + 1
    end
end
return released
"""


class RedisStreamLock:
    """Mutual exclusion per stream across processes. Pass a `redis.asyncio.Redis`
    (shared, not closed here) or a URL (a client of our own, closed by `close()`)."""

    def __init__(
        self,
        redis: Any = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "bento:lock:",
        lease: float = 10.0,
        max_backoff: float = 0.002,
    ) -> None:
        if lease <= 0.1:
            raise ValueError("lease must be longer than 0.1 s")
        self._own_client = isinstance(redis, str)
        self._where = redis if isinstance(redis, str) else "redis"
        self._redis: Any = aioredis.Redis.from_url(redis) if isinstance(redis, str) else redis
        self.prefix = prefix
        self.lease = lease
        self.max_backoff = max_backoff
        self._closed = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._own_client:
            await self._redis.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _script(self, script: str, keys: list[str], *args: Any) -> int:
        try:
            return int(await self._redis.eval(script, len(keys), *keys, *args))
        except RedisError as exc:
            raise BrokerUnavailableError("Redis (stream lock)", self._where, str(exc)) from exc

    @asynccontextmanager
    async def hold(self, streams: Collection[str], *, timeout: float = 10.0) -> AsyncIterator[None]:
        ordered = sorted(set(streams))
        keys = [self.prefix + s for s in ordered]
        token = uuid.uuid4().hex
        lease_ms = int(self.lease * 1000)
        deadline = time.monotonic() + timeout
        backoff = 0.001
        while not await self._script(_ACQUIRE, keys, token, lease_ms):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeoutError(ordered, timeout)
            await asyncio.sleep(min(remaining, backoff * (0.5 + random.random())))
            backoff = min(backoff * 2, self.max_backoff)
        renewer = asyncio.create_task(self._renew(keys, token, lease_ms), name="bento-redis-lock-renew")
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await self._script(_RELEASE, keys, token)

    async def _renew(self, keys: list[str], token: str, lease_ms: int) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                kept = await self._script(_RENEW, keys, token, lease_ms)
            except BrokerUnavailableError as exc:
                logger.warning("could not renew the lease on %s: %s", keys, exc)
                continue
            if kept < len(keys):
                logger.error(
                    "lost the lock on %d of %s (lease expired while this process was stalled); "
                    "another holder may be writing",
                    len(keys) - kept,
                    keys,
                )
                return
