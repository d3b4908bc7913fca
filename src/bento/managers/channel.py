"""ChannelManager: named streaming channels (SSE), a look-up over the container and the channel catalogue.

    sse = ChannelManager.get_instance("sse")
    await sse.initialize(backend="memory")                       # or "redis", redis_client=…
    await sse.publish("user:123", {"message": "hello"}, event="notice")
    async for message in sse.subscribe("user:123"): ...          # or psubscribe("space:1:*")
        yield message.to_sse()

Defaults come from the `channel` section instance of the same name (`CHANNEL__SSE__BACKEND`,
`…__URL`, `…__KEY_PREFIX`, `…__MAX_QUEUE`); `initialize(...)` arguments override them. With
`redis_client=RedisClient.get_instance()` the channel shares that client's connection pool
(unless it decodes responses, which pub/sub framing cannot use: then it opens its own from the
same URL). Messages are `ChannelEvent`s: a ChannelMessage that is also a plain dict
(`json.dumps(message)` works) with `.data`, `.event`, `.channel`, `.to_sse()`.
Delivery is at-most-once with a bounded queue per subscriber (see ChannelPort).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, Self

from bento.application.errors import ConfigurationError
from bento.application.ports.capabilities import HealthStatus
from bento.application.ports.channel import ChannelMessage, ChannelPort, ChannelSubscription
from bento.infrastructure.backends import CHANNELS
from bento.infrastructure.settings import ChannelSettings
from bento.managers import runtime
from bento.managers._facade import NamedFacade
from bento.managers.clients.redis import RedisClient


class ChannelEvent(dict[str, Any]):
    """A received channel message as a JSON object: `{"id", "channel", "event", "data"}` (plus
    `"pattern"` for psubscribe), with attribute access and `to_sse()`."""

    def __init__(self, message: ChannelMessage) -> None:
        super().__init__(id=message.id, channel=message.channel, event=message.event, data=message.data)
        if message.pattern is not None:
            self["pattern"] = message.pattern
        self.message = message

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def channel(self) -> str:
        return self.message.channel

    @property
    def event(self) -> str | None:
        return self.message.event

    @property
    def data(self) -> Any:
        return self.message.data

    @property
    def pattern(self) -> str | None:
        return self.message.pattern

    def to_sse(self) -> str:
        return self.message.to_sse()


class ManagedSubscription:
    """A ChannelSubscription whose messages are ChannelEvents (see ChannelPort for the rules)."""

    def __init__(self, inner: ChannelSubscription) -> None:
        self._inner = inner

    @property
    def dropped(self) -> int:
        return self._inner.dropped

    async def start(self) -> None:
        await self._inner.start()

    async def receive(self, within: float | None = None) -> ChannelEvent | None:
        message = await self._inner.receive(within)
        return None if message is None else ChannelEvent(message)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> AsyncIterator[ChannelEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ChannelEvent]:
        async for message in self._inner:
            yield ChannelEvent(message)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class ChannelManager(NamedFacade):
    """See the module docstring."""

    kind = "ChannelManager"
    close_order = 20

    def __init__(self, name: str, container: Any) -> None:
        super().__init__(name, container)
        self._channel: ChannelPort | None = None
        self._stack: AsyncExitStack | None = None
        self.backend = ""

    @property
    def initialized(self) -> bool:
        return self._channel is not None

    async def initialize(
        self,
        backend: str | None = None,
        *,
        redis_client: RedisClient | None = None,
        url: str | None = None,
        key_prefix: str | None = None,
        queue_size: int | None = None,
    ) -> Self:
        """Open the channel (idempotent until `cleanup()`); returns self for chaining."""
        if self._channel is not None:
            return self
        self.configure(backend=backend, url=url, key_prefix=key_prefix, queue_size=queue_size)
        base = self.settings.channel.get(self.name) or ChannelSettings()
        options: dict[str, Any] = {
            "backend": base.backend,
            "url": base.url.get_secret_value(),
            "key_prefix": base.key_prefix,
            "queue_size": base.max_queue,
            **self._overrides,
        }
        where = f"CHANNEL__{self.name.upper()}__BACKEND"
        try:
            row = CHANNELS.get(str(options.pop("backend")))
        except ConfigurationError as exc:
            raise ConfigurationError([f"{where}: {problem}" for problem in exc.problems]) from None
        arguments: dict[str, Any] = {}
        if redis_client is not None and "url" in row.settings.model_fields:
            connection = redis_client.connection
            if connection.connection_pool.connection_kwargs.get("decode_responses", False):
                options["url"] = redis_client.url  # pub/sub framing needs bytes: a pool of its own
            else:
                arguments["client"] = connection
        settings = row.settings(**{k: v for k, v in options.items() if k in row.settings.model_fields})
        stack = AsyncExitStack()
        self._channel = await stack.enter_async_context(CHANNELS.open(settings, **arguments))
        self._stack, self.backend = stack, row.name
        await runtime.track(self._container)
        return self

    @property
    def channel(self) -> ChannelPort:
        """The ChannelPort adapter behind this instance."""
        if self._channel is None:
            raise self._not_initialized()
        return self._channel

    async def publish(self, channel: str, data: Any, event: str | None = None) -> None:
        await self.channel.publish(channel, data, event)

    def subscribe(self, channel: str) -> ManagedSubscription:
        return ManagedSubscription(self.channel.subscribe(channel))

    def psubscribe(self, pattern: str) -> ManagedSubscription:
        return ManagedSubscription(self.channel.psubscribe(pattern))

    async def health(self) -> HealthStatus:
        if self._channel is None:
            return HealthStatus(False, f"channel:{self.name}", detail="not initialized")
        status = await self._channel.health_check()
        return HealthStatus(status.healthy, f"channel:{self.name}", status.latency_ms, status.detail)

    async def cleanup(self) -> None:
        """Close the channel (ends every subscription's iteration); idempotent."""
        stack, self._stack, self._channel = self._stack, None, None
        if stack is not None:
            await stack.aclose()
