"""WorkQueue: named durable queues of JSON objects shared by competing consumers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from bento.application.ports.capabilities import HealthStatus

#: `handler(message)` with auto_ack, else `handler(message, ack, nack)`.
WorkHandler = Callable[..., Awaitable[Any]]


class WorkQueueConsumer(Protocol):
    """A running `consume`."""

    async def cancel(self) -> None:
        """Stop taking messages and wait for running handlers; idempotent."""
        ...


class WorkQueue(Protocol):
    """Each message published to a queue is handled by one of its consumers, at least once.

    A queue keeps what is published before any consumer exists. A message is acknowledged
    only after its handler returned (`auto_ack=True`) or called `ack()`; a handler that
    raises, or calls `nack(requeue=False)`, sends it to `<queue>.dlq` with the error, and
    `nack(requeue=True)` puts it back for another delivery. A body that is not a JSON object
    is dead-lettered, never handed to a handler. `consume` returns at once with a handle.
    `close()` cancels every consumer (running handlers finish) and disconnects; idempotent.
    """

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, queue: str, message: Mapping[str, Any]) -> None: ...

    async def publish_batch(self, queue: str, messages: Sequence[Mapping[str, Any]]) -> None: ...

    async def consume(self, queue: str, handler: WorkHandler, auto_ack: bool = True) -> WorkQueueConsumer: ...

    async def health_check(self) -> HealthStatus: ...
