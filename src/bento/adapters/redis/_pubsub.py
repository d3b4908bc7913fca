"""PubSubHub: one Redis pub/sub connection shared by every local listener.

Redis pushes each message once per connection, so a thousand SSE clients or bus
subscribers on one channel cost one SUBSCRIBE and one socket, and the fan-out to
local queues happens in this process. Listener callbacks are plain functions that
must not block (they append to a bounded queue); the reader task never awaits a
listener, so one slow consumer cannot hold up the connection or the others.

`add` returns only after Redis confirmed the (P)SUBSCRIBE, so a publish made after
it is seen. redis-py re-subscribes every channel after a reconnect; messages
published while the connection was down are lost (pub/sub is at-most-once).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from bento.adapters.redis._errors import UNREACHABLE, RedisError
from bento.adapters.shared.supervision import Supervisor
from bento.application.errors import SubscribeError

logger = logging.getLogger(__name__)

#: (channel, pattern or None, data) -> None; called on the event loop, must not block.
Listener = Callable[[bytes, bytes | None, bytes], None]
_Name = tuple[bool, bytes]  # (is_pattern, Redis channel or pattern)
_CONFIRM_TIMEOUT = 10.0


class PubSubHub:
    def __init__(self, redis: Redis, supervisor: Supervisor | None = None) -> None:
        self._redis = redis
        self._supervisor = supervisor or Supervisor("Redis pub/sub")
        self._pubsub: PubSub | None = None
        self._listeners: dict[_Name, dict[int, Listener]] = {}
        self._confirmations: dict[_Name, asyncio.Future[None]] = {}
        self._pongs: dict[bytes, asyncio.Future[None]] = {}
        self._ids = itertools.count()
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def add(self, name: str, *, pattern: bool, listener: Listener) -> tuple[_Name, int]:
        """Register `listener` for a channel (or a PSUBSCRIBE pattern); returns a token for `remove`."""
        key: _Name = (pattern, name.encode())
        token = next(self._ids)
        async with self._lock:
            if self._closed:
                raise SubscribeError(name, "the Redis pub/sub connection is closed")
            try:
                listeners = self._listeners.get(key)
                if listeners:
                    # Already subscribed: messages Redis sent before now must not reach the newcomer.
                    await self.barrier()
                    listeners[token] = listener
                    return key, token
                self._listeners[key] = {token: listener}
                await self._subscribe(key)
            except (RedisError, TimeoutError) as exc:
                if not self._listeners.get(key, {}).keys() - {token}:
                    self._listeners.pop(key, None)
                raise SubscribeError(name, f"{type(exc).__name__}: {exc}") from exc
        return key, token

    async def barrier(self) -> None:
        """Return once every message Redis had pushed to this connection before the call has
        been dispatched: a PING travels the same ordered stream, so its PONG comes after them.
        Used when a local listener joins a channel the connection already receives, so it gets
        exactly what is published after it joined, as with its own SUBSCRIBE."""
        if self._pubsub is None or self._reader is None:
            return
        token = f"bento-barrier-{next(self._ids)}".encode()
        pong: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs[token] = pong
        try:
            await self._pubsub.ping(token)
            async with asyncio.timeout(_CONFIRM_TIMEOUT):
                await pong
        finally:
            self._pongs.pop(token, None)

    async def _subscribe(self, key: _Name) -> None:
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations[key] = confirmed
        if self._pubsub is None:
            self._pubsub = self._redis.pubsub()
        try:
            if key[0]:
                await self._pubsub.psubscribe(key[1])
            else:
                await self._pubsub.subscribe(key[1])
            if self._reader is None:
                self._reader = self._supervisor.spawn(
                    "pub/sub reader", self._read_forever, stopping=lambda: self._closed
                )
            async with asyncio.timeout(_CONFIRM_TIMEOUT):
                await confirmed
        finally:
            self._confirmations.pop(key, None)

    async def remove(self, token: tuple[_Name, int]) -> None:
        key, listener_id = token
        async with self._lock:
            listeners = self._listeners.get(key)
            if listeners is None or listeners.pop(listener_id, None) is None:
                return
            if listeners or self._pubsub is None or self._closed:
                return
            del self._listeners[key]
            try:
                if key[0]:
                    await self._pubsub.punsubscribe(key[1])
                else:
                    await self._pubsub.unsubscribe(key[1])
            except RedisError as exc:
                logger.warning("could not unsubscribe %r: %s", key[1], exc)

    def listener_count(self) -> int:
        return sum(len(v) for v in self._listeners.values())

    async def _read_forever(self) -> None:
        assert self._pubsub is not None
        failures = 0
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
                failures = 0
            except RedisError as exc:
                failures += 1
                level = logging.WARNING if isinstance(exc, UNREACHABLE) else logging.ERROR
                logger.log(level, "Redis pub/sub read failed (%s); reconnecting", exc)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, object]) -> None:
        kind, channel, data = message["type"], message["channel"], message["data"]
        if kind == "message" or kind == "pmessage":
            pattern = message.get("pattern")
            key: _Name = (True, pattern) if kind == "pmessage" else (False, channel)  # type: ignore[assignment]
            assert isinstance(channel, bytes) and isinstance(data, bytes)
            for listener in list(self._listeners.get(key, {}).values()):
                listener(channel, pattern if isinstance(pattern, bytes) else None, data)
        elif kind == "pong":
            pong = self._pongs.get(data) if isinstance(data, bytes) else None
            if pong is not None and not pong.done():
                pong.set_result(None)
        elif kind in ("subscribe", "psubscribe"):
            confirmed = self._confirmations.get((kind == "psubscribe", channel))  # type: ignore[arg-type]
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)

    async def close(self) -> None:
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            self._listeners.clear()
            if self._reader is not None:
                self._reader.cancel()
                await asyncio.wait({self._reader})
            if self._pubsub is not None:
                try:
                    await self._pubsub.aclose()  # type: ignore[no-untyped-call]
                except RedisError as exc:
                    logger.warning("closing the Redis pub/sub connection failed: %s", exc)
