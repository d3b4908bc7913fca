"""RedisChannel: ChannelPort on Redis pub/sub (`CHANNEL__{NAME}__BACKEND=redis`).

`publish` is `PUBLISH {key_prefix}{channel}` of a small JSON object
(`{"id", "event", "data"}`); `subscribe` and `psubscribe` are SUBSCRIBE and Redis's
native PSUBSCRIBE. The adapter keeps one pub/sub connection, subscribes each channel
or pattern once however many local subscribers it has, decodes each message once and
fans it out to bounded per-subscriber queues (see `_subscription`). At-most-once: a
subscriber gets what is published while it listens; messages published during a
reconnect are lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from bento.adapters.shared.channel_fanout import Fanout, QueuedSubscription
from bento.application.errors import BusClosedError, MissingExtraError, PublishError, SubscribeError

try:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("Redis channel", "redis", "redis") from exc

from bento.adapters.redis._errors import checked_client
from bento.adapters.redis._keys import escape_glob
from bento.adapters.redis._pubsub import PubSubHub
from bento.adapters.redis.settings import RedisChannelSettings
from bento.application.ports.capabilities import HealthStatus
from bento.application.ports.channel import ChannelMessage, encode_data

logger = logging.getLogger(__name__)


class RedisChannel:
    """See the module docstring. `client` shares an existing redis.asyncio client (not closed here)."""

    def __init__(self, settings: RedisChannelSettings | None = None, *, client: Redis | None = None) -> None:
        self.settings = settings or RedisChannelSettings()
        self._client, self._owns_client = client, client is None
        self._hub: PubSubHub | None = None
        self._fanout = Fanout()
        self._tokens: dict[tuple[bool, str], object] = {}
        self._lock = asyncio.Lock()
        self._prefix = self.settings.key_prefix
        self._closed = False

    async def start(self) -> None:
        """Connect and check Redis answers (BrokerUnavailableError otherwise)."""
        if self._closed:
            raise BusClosedError("this RedisChannel was closed; build a new one")
        if self._hub is not None:
            return
        client = await checked_client(self.settings.url.get_secret_value(), self._client)
        self._client, self._hub = client, PubSubHub(client)

    async def __aenter__(self) -> RedisChannel:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _ready(self, action: str, target: str) -> tuple[Redis, PubSubHub]:
        if self._closed:
            raise BusClosedError(f"cannot {action} {target!r}: the channel is closed")
        if self._client is None or self._hub is None:
            raise BusClosedError(f"cannot {action} {target!r}: the channel is not started (use `async with`)")
        return self._client, self._hub

    async def publish(self, channel: str, data: Any, event: str | None = None) -> None:
        client, _ = self._ready("publish to", channel)
        message = ChannelMessage(channel, data, event)
        try:
            body = encode_data({"id": message.id, "event": event, "data": data})
        except (TypeError, ValueError) as exc:
            raise PublishError(channel, f"data is not JSON-serialisable: {exc}") from exc
        try:
            await client.publish(self._prefix + channel, body)
        except RedisError as exc:
            raise PublishError(channel, f"{type(exc).__name__}: {exc}") from exc

    def subscribe(self, channel: str) -> QueuedSubscription:
        return self._subscription(channel, pattern=False)

    def psubscribe(self, pattern: str) -> QueuedSubscription:
        return self._subscription(pattern, pattern=True)

    def _subscription(self, target: str, *, pattern: bool) -> QueuedSubscription:
        self._ready("subscribe to", target)
        return QueuedSubscription(
            target,
            pattern=pattern,
            queue_size=self.settings.queue_size,
            register=self._add,
            unregister=self._remove,
        )

    async def _add(self, sub: QueuedSubscription) -> None:
        _, hub = self._ready("subscribe to", sub.target)
        key = (sub.pattern, sub.target)
        # Under the lock: the first subscriber of a name waits for Redis's confirmation, later ones
        # for a barrier, so each receives exactly what is published after its start() returned.
        async with self._lock:
            if key in self._tokens:
                try:
                    await hub.barrier()
                except (RedisError, TimeoutError) as exc:
                    raise SubscribeError(sub.target, f"{type(exc).__name__}: {exc}") from exc
                self._fanout.add(sub)
                return
            name = escape_glob(self._prefix) + sub.target if sub.pattern else self._prefix + sub.target
            self._tokens[key] = await hub.add(name, pattern=sub.pattern, listener=self._on_message)
            self._fanout.add(sub)

    async def _remove(self, sub: QueuedSubscription) -> None:
        async with self._lock:
            if not self._fanout.remove(sub):
                return
            token = self._tokens.pop((sub.pattern, sub.target), None)
            if token is not None and self._hub is not None:
                await self._hub.remove(token)  # type: ignore[arg-type]

    def _on_message(self, channel: bytes, pattern: bytes | None, data: bytes) -> None:
        name = channel.decode(errors="replace")[len(self._prefix) :]
        try:
            body = json.loads(data)
            message = ChannelMessage(name, body["data"], body.get("event"), str(body["id"]))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring a malformed message on channel %r: %s", name, exc)
            return
        if pattern is None:
            self._fanout.offer(self._fanout.channels.get(name), message)
            return
        target = pattern.decode(errors="replace")[len(escape_glob(self._prefix)) :]
        message = ChannelMessage(name, message.data, message.event, message.id, target)
        self._fanout.offer(self._fanout.patterns.get(target), message)

    async def health_check(self) -> HealthStatus:
        if self._client is None or self._closed:
            detail = "closed" if self._closed else "not started"
            return HealthStatus(healthy=False, component="channel-redis", detail=detail)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(5.0):
                await self._client.ping()
        except (RedisError, TimeoutError) as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return HealthStatus(False, "channel-redis", elapsed, f"{type(exc).__name__}: {exc}")
        elapsed = (time.perf_counter() - started) * 1000
        return HealthStatus(True, "channel-redis", elapsed, f"{self._fanout.count()} subscription(s)")

    async def close(self) -> None:
        """End every subscription's iteration, drop the pub/sub connection, disconnect."""
        if self._closed:
            return
        self._closed = True
        self._fanout.end_all()
        if self._hub is not None:
            await self._hub.close()
        if self._client is not None and self._owns_client:
            try:
                await self._client.aclose()
            except RedisError as exc:
                logger.warning("closing the Redis connection failed: %s", exc)
