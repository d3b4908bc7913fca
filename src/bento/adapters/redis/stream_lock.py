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

`hold_marked` adds a *commit marker* (a key next to the locks) that the acquire
script reads and sets busy and the release script publishes, so a writer learns in the
same round trips whether anyone else committed since its own last commit; a holder
that lost its lease poisons the marker instead (see `_ACQUIRE_MARKED`). The ClickHouse
event store's version cache relies on it. Every write of the marker sets its lifetime
(`marker_ttl`, an hour by default), so markers of tables nobody writes any more expire
instead of accumulating; an expired marker reads as absent, which only makes the next
writer reload its cache.
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
from dataclasses import dataclass
from typing import Any, Self

from bento.application.credentials import mask_url
from bento.application.errors import BrokerUnavailableError, LockTimeoutError, MissingExtraError

try:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError("Redis stream lock", "redis", "redis") from exc

logger = logging.getLogger(__name__)

_ACQUIRE = """
for _, key in ipairs(KEYS) do
    if redis.call('EXISTS', key) == 1 then return {0, ''} end
end
for _, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
end
return {1, ''}
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


# Marked variants (the last KEY is the commit marker): acquire returns the marker's
# value and clears it (the holder is busy); release publishes ARGV[2] ('' = leave it
# cleared) only if this holder still owns every key and nobody poisoned the marker
# meanwhile; a holder that finds it lost its lease poisons the marker instead, so the
# current holder cannot publish a "fresh" marker over rows it never saw.
_ACQUIRE_MARKED = """
for i = 1, #KEYS - 1 do
    if redis.call('EXISTS', KEYS[i]) == 1 then return {0, ''} end
end
for i = 1, #KEYS - 1 do
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
end
local marker = KEYS[#KEYS]
local seen = redis.call('GET', marker) or ''
redis.call('SET', marker, 'busy:' .. ARGV[1], 'PX', ARGV[3])
return {1, seen}
"""

_RELEASE_MARKED = """
local held = true
for i = 1, #KEYS - 1 do
    if redis.call('GET', KEYS[i]) ~= ARGV[1] then held = false end
end
local marker = KEYS[#KEYS]
if held then
    if ARGV[2] ~= '' and redis.call('GET', marker) == 'busy:' .. ARGV[1] then
        redis.call('SET', marker, ARGV[2], 'PX', ARGV[3])
    else
        redis.call('DEL', marker)
    end
else
    redis.call('SET', marker, 'lost:' .. ARGV[1], 'PX', ARGV[3])
end
for i = 1, #KEYS - 1 do
    if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return held and 1 or 0
"""


@dataclass(slots=True)
class CommitMark:
    """What `hold_marked` yields: the marker as found (`seen`, None when absent) and the
    value to leave on release (`publish`; None leaves it absent)."""

    seen: str | None
    next: str | None = None

    def publish(self, value: str | None) -> None:
        self.next = value


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
        marker_ttl: float = 3600.0,
    ) -> None:
        if lease <= 0.1:
            raise ValueError("lease must be longer than 0.1 s")
        if marker_ttl < lease:
            raise ValueError("marker_ttl must be at least the lease")
        self._own_client = isinstance(redis, str)
        # Only the masked address is kept for messages: the URL may carry a password.
        self._where = mask_url(redis) if isinstance(redis, str) else "redis"
        self._redis: Any = aioredis.Redis.from_url(redis) if isinstance(redis, str) else redis
        self.prefix = prefix
        self.lease = lease
        self.max_backoff = max_backoff
        self.marker_ttl = marker_ttl
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
        await self._acquire(_ACQUIRE, keys, ordered, token, timeout)
        renewer = asyncio.create_task(self._renew(keys, token, lease_ms), name="bento-redis-lock-renew")
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await self._script(_RELEASE, keys, token)

    @asynccontextmanager
    async def hold_marked(
        self, streams: Collection[str], *, marker: str, timeout: float = 10.0
    ) -> AsyncIterator[CommitMark]:
        """`hold`, plus a commit marker `<prefix><marker>` read and cleared on acquire
        and published on release, in the same scripts (no extra round trip). Writers use
        it to tell whether anyone else committed since their own last commit (the
        ClickHouse event store's version cache); see `_ACQUIRE_MARKED`."""
        ordered = sorted(set(streams))
        keys = [self.prefix + s for s in ordered] + [self.prefix + marker]
        token = uuid.uuid4().hex
        marker_ttl_ms = int(self.marker_ttl * 1000)
        seen = await self._acquire(_ACQUIRE_MARKED, keys, ordered, token, timeout, marker_ttl_ms)
        mark = CommitMark(seen or None)
        renewer = asyncio.create_task(
            self._renew(keys[:-1], token, int(self.lease * 1000)), name="bento-redis-lock-renew"
        )
        try:
            yield mark
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            if not await self._script(_RELEASE_MARKED, keys, token, mark.next or "", marker_ttl_ms):
                logger.error("released %s after losing it; marked %s so other writers reload", keys[:-1], keys[-1])

    async def _acquire(
        self, script: str, keys: list[str], ordered: list[str], token: str, timeout: float, *extra: Any
    ) -> str:
        """Run an acquire script (it answers {taken, marker}) until it takes the keys,
        with a jittered back-off; the marker's value ('' when absent or unmarked)."""
        lease_ms = int(self.lease * 1000)
        deadline = time.monotonic() + timeout
        backoff = 0.001
        while True:
            try:
                taken, seen = await self._redis.eval(script, len(keys), *keys, token, lease_ms, *extra)
            except RedisError as exc:
                raise BrokerUnavailableError("Redis (stream lock)", self._where, str(exc)) from exc
            if int(taken):
                return seen.decode() if isinstance(seen, bytes) else str(seen)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeoutError(ordered, timeout)
            await asyncio.sleep(min(remaining, backoff * (0.5 + random.random())))
            backoff = min(backoff * 2, self.max_backoff)

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
