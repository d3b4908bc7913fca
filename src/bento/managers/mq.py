"""MQManager: seed 000's named message queues (work queues), a façade over the container.

    mq = MQManager.get_instance("orders")
    await mq.configure(backend="rabbitmq", url="amqp://guest:guest@localhost:5672/",
                       prefetch_count=10).initialize()
    await mq.publish(queue="orders", message={"order_id": "123"})
    await mq.publish_batch(queue="orders", messages=[{...}, {...}])
    consumer = await mq.consume("orders", handler)                        # handler(message)
    await mq.consume("orders", handler_with_ack, auto_ack=False)          # handler(message, ack, nack)

Backends: `redis` (RedisWorkQueue, Redis Streams) and `rabbitmq` (RabbitMQWorkQueue); both promise
the same thing (see either module): a message is acknowledged after its handler returned, a
handler that raises dead-letters it to `<queue>.dlq`, `nack(requeue=True)` puts it back.
`consume` starts consuming and returns at once with a handle (`await handle.cancel()`).
Defaults come from the `mq` section instance of the same name (`MQ__ORDERS__BACKEND`, `…__URL`,
`…__MAX_CONNECTIONS`, `…__PREFETCH_COUNT`); `configure(...)` also takes any field of the
backend's settings (RedisWorkQueueSettings or RabbitMQSettings). Calling `configure` with a
`backend` starts over from that backend's defaults (the seed configures one, then the other).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Self

from bento.application.errors import ConfigurationError
from bento.application.ports.capabilities import HealthStatus
from bento.infrastructure.settings import MQSettings
from bento.managers import runtime
from bento.managers._facade import NamedFacade


class WorkQueueConsumerHandle(Protocol):
    async def cancel(self) -> None: ...


class WorkQueue(Protocol):
    """What RedisWorkQueue and RabbitMQWorkQueue both offer."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, queue: str, message: Mapping[str, Any]) -> None: ...

    async def publish_batch(self, queue: str, messages: Sequence[Mapping[str, Any]]) -> None: ...

    async def consume(self, queue: str, handler: Any, auto_ack: bool = True) -> Any: ...

    async def health_check(self) -> HealthStatus: ...


class MQManager(NamedFacade):
    """See the module docstring."""

    kind = "MQManager"
    close_order = 10

    def __init__(self, name: str, container: Any) -> None:
        super().__init__(name, container)
        self._queue: WorkQueue | None = None
        self.backend = ""

    @property
    def initialized(self) -> bool:
        return self._queue is not None

    def configure(self, **options: Any) -> Self:
        if options.get("backend") is not None:
            self._overrides = {}
        return super().configure(**options)

    def _options(self) -> dict[str, Any]:
        base = self.settings.mq.get(self.name)
        backend = self._overrides.get("backend") or (base.backend if base else MQSettings().backend)
        options: dict[str, Any] = {}
        if base is not None and base.backend == backend:
            options = {
                "url": base.url,
                "max_connections": base.max_connections,
                "prefetch_count": base.prefetch_count,
            }
        elif backend == "redis":
            options = {"url": MQSettings().url}
        options.update(self._overrides)
        options["backend"] = backend
        return options

    async def initialize(self) -> Self:
        """Connect the selected backend (idempotent until `cleanup()`)."""
        if self._queue is not None:
            return self
        options = self._options()
        backend = options.pop("backend")
        queue: WorkQueue
        if backend == "redis":
            from bento.adapters.redis.work_queue import RedisWorkQueue, RedisWorkQueueSettings

            queue = RedisWorkQueue(RedisWorkQueueSettings(**options))
        elif backend == "rabbitmq":
            from bento.adapters import rabbitmq

            options.pop("max_connections", None)  # one AMQP connection; channels are multiplexed on it
            queue = rabbitmq.RabbitMQWorkQueue(rabbitmq.RabbitMQSettings(**options))
        else:
            raise ConfigurationError(
                [f"MQ__{self.name.upper()}__BACKEND: {backend!r} is not redis or rabbitmq"]
            )
        await queue.start()
        self._queue, self.backend = queue, backend
        await runtime.track(self._container)
        return self

    @property
    def queue(self) -> WorkQueue:
        """The work-queue adapter behind this instance."""
        if self._queue is None:
            raise self._not_initialized()
        return self._queue

    async def publish(self, queue: str, message: Mapping[str, Any]) -> None:
        await self.queue.publish(queue, message)

    async def publish_batch(self, queue: str, messages: Sequence[Mapping[str, Any]]) -> None:
        await self.queue.publish_batch(queue, messages)

    async def consume(self, queue: str, handler: Any, auto_ack: bool = True) -> WorkQueueConsumerHandle:
        handle: WorkQueueConsumerHandle = await self.queue.consume(queue, handler, auto_ack=auto_ack)
        return handle

    async def health(self) -> HealthStatus:
        if self._queue is None:
            return HealthStatus(False, f"mq:{self.name}", detail="not initialized")
        status = await self._queue.health_check()
        return HealthStatus(status.healthy, f"mq:{self.name}", status.latency_ms, status.detail)

    async def cleanup(self) -> None:
        """Stop every consumer (running handlers finish) and disconnect; idempotent."""
        queue, self._queue = self._queue, None
        if queue is not None:
            await queue.close()
