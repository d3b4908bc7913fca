"""RabbitMQClient: a named RabbitMQ connection, a façade over the container.

    client = RabbitMQClient.get_instance()
    await client.configure(url="amqp://guest:guest@localhost:5672/", heartbeat=60,
                           prefetch_count=10).initialize()
    channel = await client.get_channel()             # shared channel (aio-pika)
    consumer_channel = await client.get_channel(new=True)

The connection is aio-pika's robust connection (reconnects and restores channels),
opened as the RabbitMQ adapters open theirs. Defaults: the `mq` (then `event`) instance
of the same name when it is a RabbitMQ one, else RabbitMQSettings' defaults; `configure`
takes any RabbitMQSettings field (`url`, `heartbeat`, `prefetch_count`, `connection_name` …).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Self

from bento.application.credentials import mask_url
from bento.application.errors import BrokerUnavailableError, MissingExtraError
from bento.application.ports.capabilities import HealthStatus
from bento.managers import runtime
from bento.managers._facade import NamedFacade, timed_check

if TYPE_CHECKING:
    from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

    from bento.adapters.rabbitmq.settings import RabbitMQSettings

logger = logging.getLogger(__name__)


class RabbitMQClient(NamedFacade):
    """See the module docstring."""

    kind = "RabbitMQClient"
    close_order = 90

    def __init__(self, name: str, container: Any) -> None:
        super().__init__(name, container)
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._channels: list[AbstractRobustChannel] = []
        self._settings: RabbitMQSettings | None = None

    @property
    def initialized(self) -> bool:
        return self._connection is not None

    def rabbitmq_settings(self, **extra: Any) -> RabbitMQSettings:
        """The effective settings: configured section instance, then `configure`, then `extra`."""
        from bento.adapters.rabbitmq.settings import RabbitMQSettings

        base: dict[str, Any] = {}
        mq = self.settings.mq.get(self.name)
        event = self.settings.event.get(self.name)
        if mq is not None and mq.backend == "rabbitmq":
            base = {"url": mq.url, "prefetch_count": mq.prefetch_count}
        elif event is not None and event.backend == "rabbitmq":
            base = event.model_dump(exclude={"backend"})
        merged = {**base, **self._overrides, **{k: v for k, v in extra.items() if v is not None}}
        return RabbitMQSettings(**merged)

    async def initialize(self, url: str | None = None, **options: Any) -> Self:
        """Open the robust connection (BrokerUnavailableError when RabbitMQ cannot be reached)."""
        if self._connection is not None:
            return self
        try:
            from bento.adapters.rabbitmq.connection import connect
        except ImportError as exc:
            raise MissingExtraError("RabbitMQClient", "rabbitmq", "aio_pika") from exc
        settings = self.rabbitmq_settings(url=url, **options)
        self._connection = await connect(settings, f"client:{self.name}")
        self._settings = settings
        await runtime.track(self._container)
        return self

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise self._not_initialized()
        return self._connection

    async def get_channel(self, new: bool = False) -> AbstractRobustChannel:
        """The shared channel, or with `new=True` a channel of its own (for a consumer), both
        with QoS `prefetch_count`. Channels are closed by `cleanup()`."""
        from bento.adapters.rabbitmq.connection import DRIVER_ERRORS

        connection = self.connection
        if not new and self._channel is not None and not self._channel.is_closed:
            return self._channel
        assert self._settings is not None
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self._settings.prefetch_count)
        except DRIVER_ERRORS as exc:
            raise BrokerUnavailableError(
                "RabbitMQ", mask_url(self._settings.url.get_secret_value()), f"{type(exc).__name__}: {exc}"
            ) from exc
        self._channels.append(channel)
        if not new:
            self._channel = channel
        return channel

    async def health(self) -> HealthStatus:
        """A real round trip: open and close a channel."""
        component = f"rabbitmq:{self.name}"
        if self._connection is None:
            return HealthStatus(False, component, detail="not initialized")
        connection = self._connection

        async def probe() -> None:
            channel = await connection.channel(publisher_confirms=False)
            await channel.close()

        return await timed_check(component, probe)

    async def cleanup(self) -> None:
        """Close every channel handed out, then the connection (idempotent)."""
        connection, self._connection, self._channel = self._connection, None, None
        channels, self._channels = self._channels, []
        if connection is None:
            return
        from bento.adapters.rabbitmq.connection import DRIVER_ERRORS

        for channel in channels:
            if not channel.is_closed:
                try:
                    await channel.close()
                except DRIVER_ERRORS as exc:
                    logger.info("RabbitMQ channel was already closed: %s", exc)
        await connection.close()
