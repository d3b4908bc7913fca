"""WebSocketManager: WebSocket clients of this process, reached from any process through a channel.

    ws_manager = WebSocketManager()                       # the "default" instance
    await ws_manager.broadcast(WebSocketMessage(type="notification", data={...}))
    await ws_manager.send_to(message, client_id="user-1")  # or topic="orders", pattern="orders:*"

Sending never writes to a socket directly: it publishes the encoded message, with its target,
on the streaming channel `websocket:{name}` of the ChannelManager instance of the same name
(`CHANNEL__{NAME}__BACKEND=redis` to span processes; memory by default). Every process's
manager listens to that channel and queues the message for its own matching clients, so a
broadcast from a worker, a consumer or another replica reaches every client, in publish order.
The per-client queues are bounded (`queue_size`, default 256) with the overflow policy of
`ClientConnection` (`overflow="disconnect"` by default, or `"drop_oldest"`). The channel's
own per-subscriber queue (`CHANNEL__{NAME}__MAX_QUEUE`) bounds what waits for this process.

Clients are registered by the endpoint helper (`bento.integrations.fastapi.serve_websocket`),
or by `connect()` for other frameworks. Like the cache, `WebSocketManager(name)` is
`get_instance(name)` and opens itself on first use.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Iterable
from typing import Any, Self

from bento.application.ports.capabilities import HealthStatus
from bento.managers import runtime
from bento.managers._facade import NamedFacade
from bento.managers.channel import ChannelManager, ManagedSubscription
from bento.managers.websocket.connection import (
    CLOSE_GOING_AWAY,
    ClientConnection,
    OverflowPolicy,
    WebSocketMessage,
)

logger = logging.getLogger(__name__)

_DEFAULT = "default"


class WebSocketManager(NamedFacade):
    """See the module docstring."""

    kind = "WebSocketManager"
    close_order = 10  # before the channel it listens to

    def __new__(cls, name: str = _DEFAULT, container: Any = None) -> Self:
        if container is None:  # `WebSocketManager()` in application code: the named instance
            return cls.get_instance(name)
        return super().__new__(cls)

    def __init__(self, name: str = _DEFAULT, container: Any = None) -> None:
        if container is None:
            return  # already built by get_instance
        super().__init__(name, container)
        self._clients: set[ClientConnection] = set()
        self._by_id: dict[str, set[ClientConnection]] = {}
        self._by_topic: dict[str, set[ClientConnection]] = {}
        self._channel: ChannelManager | None = None
        self._subscription: ManagedSubscription | None = None
        self._listener: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.queue_size = 256
        self.overflow: OverflowPolicy = "disconnect"
        self.disconnected_slow = 0

    @property
    def initialized(self) -> bool:
        return self._listener is not None

    @property
    def channel_name(self) -> str:
        return f"websocket:{self.name}"

    async def initialize(
        self, *, channel: str | None = None, queue_size: int | None = None, overflow: OverflowPolicy | None = None
    ) -> Self:
        """Start listening on the channel (idempotent until `cleanup()`). `channel` names the
        ChannelManager instance (default: this instance's name)."""
        async with self._lock:
            if self._listener is not None:
                return self
            self.configure(channel=channel, queue_size=queue_size, overflow=overflow)
            self.queue_size = int(self._overrides.get("queue_size", self.queue_size))
            self.overflow = self._overrides.get("overflow", self.overflow)
            if self.overflow not in ("disconnect", "drop_oldest"):
                raise ValueError(f"overflow must be 'disconnect' or 'drop_oldest', not {self.overflow!r}")
            manager = ChannelManager.get_instance(str(self._overrides.get("channel", self.name)))
            await manager.initialize()
            subscription = manager.subscribe(self.channel_name)
            await subscription.start()  # listening before initialize() returns: nothing sent later is missed
            self._channel, self._subscription = manager, subscription
            self._listener = asyncio.get_running_loop().create_task(self._listen(subscription))
            await runtime.track(self._container)
        return self

    async def _listen(self, subscription: ManagedSubscription) -> None:
        try:
            async for message in subscription:
                try:
                    self._deliver(message.data)
                except Exception:  # one bad envelope must not stop delivery to everyone
                    logger.exception("undeliverable WebSocket envelope on %s", self.channel_name)
        except Exception:
            logger.exception("WebSocket listener of %r stopped", self.name)
            raise

    # -- clients --------------------------------------------------------------------------------
    def connect(self, client_id: str | None = None, topics: Iterable[str] = ()) -> ClientConnection:
        """Register a client of this process (the endpoint helper calls it after accept)."""
        from bento.domain.metadata import new_message_id

        client = ClientConnection(id=client_id or new_message_id(), max_queue=self.queue_size, overflow=self.overflow)
        self._clients.add(client)
        self._by_id.setdefault(client.id, set()).add(client)
        for topic in topics:
            self.subscribe(client, topic)
        return client

    def disconnect(self, client: ClientConnection) -> None:
        """Forget a client (idempotent); its queue is freed."""
        self._clients.discard(client)
        _remove(self._by_id, client.id, client)
        for topic in list(client.topics):
            _remove(self._by_topic, topic, client)
        if client.close_reason is None:
            client.close(CLOSE_GOING_AWAY, "disconnected")

    def subscribe(self, client: ClientConnection, topic: str) -> None:
        client.topics.add(topic)
        self._by_topic.setdefault(topic, set()).add(client)

    def unsubscribe(self, client: ClientConnection, topic: str) -> None:
        client.topics.discard(topic)
        _remove(self._by_topic, topic, client)

    @property
    def clients(self) -> list[ClientConnection]:
        """The clients connected to this process."""
        return list(self._clients)

    # -- sending --------------------------------------------------------------------------------
    async def broadcast(self, message: WebSocketMessage) -> None:
        """Send to every client of every process."""
        await self._publish({"all": True}, message)

    async def send_to(
        self,
        message: WebSocketMessage,
        *,
        client_id: str | None = None,
        topic: str | None = None,
        pattern: str | None = None,
    ) -> None:
        """Send to the clients with this id, or subscribed to this topic, or to a topic matching
        this pattern (`*`, `?`, `[seq]`), on every process. Give exactly one."""
        given = {k: v for k, v in {"client_id": client_id, "topic": topic, "pattern": pattern}.items() if v}
        if len(given) != 1:
            raise ValueError("send_to takes exactly one of client_id=, topic=, pattern=")
        await self._publish(given, message)

    async def _publish(self, target: dict[str, Any], message: WebSocketMessage) -> None:
        if self._channel is None:
            await self.initialize()
        assert self._channel is not None
        await self._channel.publish(self.channel_name, {**target, "text": message.to_json()})

    def _deliver(self, envelope: dict[str, Any]) -> None:
        text = envelope["text"]
        if envelope.get("all"):
            targets: Iterable[ClientConnection] = list(self._clients)
        elif "client_id" in envelope:
            targets = list(self._by_id.get(envelope["client_id"], ()))
        elif "topic" in envelope:
            targets = list(self._by_topic.get(envelope["topic"], ()))
        else:
            pattern = envelope["pattern"]
            found: set[ClientConnection] = set()
            for topic, members in self._by_topic.items():
                if fnmatch.fnmatchcase(topic, pattern):
                    found |= members
            targets = found
        for client in targets:
            if not client.offer(text):
                self.disconnected_slow += 1
                logger.info("WebSocket client %r dropped: %s", client.id[:64], client.close_reason)
                self.disconnect(client)

    # -- lifecycle ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counts for a metrics endpoint: clients, messages queued (max and total), drops."""
        queued = [client.queued for client in self._clients]
        return {
            "clients": len(queued),
            "queued_total": sum(queued),
            "queued_max": max(queued, default=0),
            "queue_size": self.queue_size,
            "overflow": self.overflow,
            "disconnected_slow": self.disconnected_slow,
            "dropped": sum(client.dropped for client in self._clients),
        }

    async def health(self) -> HealthStatus:
        if self._channel is None or self._listener is None:
            return HealthStatus(False, f"websocket:{self.name}", detail="not initialized")
        if self._listener.done():
            return HealthStatus(False, f"websocket:{self.name}", detail="the channel listener stopped")
        status = await self._channel.health()
        return HealthStatus(status.healthy, f"websocket:{self.name}", status.latency_ms, status.detail)

    async def cleanup(self) -> None:
        """Close every client (1001, going away) and stop listening; idempotent."""
        for client in list(self._clients):
            client.close(CLOSE_GOING_AWAY, "server shutting down")
            self.disconnect(client)
        listener, self._listener = self._listener, None
        subscription, self._subscription, self._channel = self._subscription, None, None
        if subscription is not None:
            await subscription.aclose()
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)


def _remove(index: dict[str, set[ClientConnection]], key: str, client: ClientConnection) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(client)
        if not members:
            del index[key]
