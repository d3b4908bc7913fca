"""MQManager: named work queues, a look-up over the container and the work-queue catalogue.

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
`backend` starts over from that backend's defaults (configuring one backend, then the other, does not mix them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any, Self

from pydantic import BaseModel, ValidationError

from bento.application.errors import ConfigurationError
from bento.application.ports.capabilities import HealthStatus
from bento.application.ports.work_queue import WorkHandler, WorkQueue, WorkQueueConsumer
from bento.infrastructure.backends import WORK_QUEUES, Backend, Catalogue
from bento.infrastructure.settings import MQSettings
from bento.managers import runtime
from bento.managers._facade import NamedFacade


class MQManager(NamedFacade):
    """See the module docstring."""

    kind = "MQManager"
    close_order = 10

    def __init__(self, name: str, container: Any) -> None:
        super().__init__(name, container)
        self._queue: WorkQueue | None = None
        self._stack: AsyncExitStack | None = None
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
        backend = WORK_QUEUES.canonical(backend)
        options: dict[str, Any] = {}
        if base is not None and base.backend == backend:
            options = {
                "url": base.url,
                "max_connections": base.max_connections,
                "prefetch_count": base.prefetch_count,
            }
        elif WORK_QUEUES.by_scheme(MQSettings().url.get_secret_value()) == backend:
            options = {"url": MQSettings().url}  # the section's default URL, where it fits
        options.update(self._overrides)
        options["backend"] = backend
        return options

    async def initialize(self) -> Self:
        """Connect the selected backend (idempotent until `cleanup()`)."""
        if self._queue is not None:
            return self
        options = self._options()
        backend = options.pop("backend")
        row = _backend(WORK_QUEUES, backend, f"MQ__{self.name.upper()}__BACKEND")
        fields = row.settings.model_fields
        settings = _validated(row.settings, {k: v for k, v in options.items() if k in fields or k not in _SECTION})
        stack = AsyncExitStack()
        self._queue = await stack.enter_async_context(WORK_QUEUES.open(settings))
        self._stack, self.backend = stack, row.name
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

    async def consume(self, queue: str, handler: WorkHandler, auto_ack: bool = True) -> WorkQueueConsumer:
        return await self.queue.consume(queue, handler, auto_ack=auto_ack)

    async def health(self) -> HealthStatus:
        if self._queue is None:
            return HealthStatus(False, f"mq:{self.name}", detail="not initialized")
        status = await self._queue.health_check()
        return HealthStatus(status.healthy, f"mq:{self.name}", status.latency_ms, status.detail)

    async def cleanup(self) -> None:
        """Stop every consumer (running handlers finish) and disconnect; idempotent."""
        stack, self._stack, self._queue = self._stack, None, None
        if stack is not None:
            await stack.aclose()


#: Fields of the `mq` section that not every backend's settings have (one AMQP connection
#: multiplexes channels, so RabbitMQ has no `max_connections`): dropped where they do not apply.
_SECTION = set(MQSettings.model_fields)


def _backend(catalogue: Catalogue, backend: str, where: str) -> Backend:
    try:
        return catalogue.get(backend)
    except ConfigurationError as exc:
        raise ConfigurationError([f"{where}: {problem}" for problem in exc.problems]) from None


def _validated(model: type[BaseModel], options: Mapping[str, Any]) -> Any:
    try:
        return model(**options)
    except ValidationError as exc:
        raise ConfigurationError([f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from None
