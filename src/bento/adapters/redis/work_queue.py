"""RedisWorkQueue: the WorkQueue port (`publish`, `publish_batch`, `consume`) on Redis Streams.

Same contract as RabbitMQWorkQueue, so MQManager can switch backends without the caller noticing:
a queue is the stream `{key_prefix}{queue}` read by one consumer group (`group`), created at the
start of the stream, so messages published before any consumer existed are kept for it. Every
consumer gets up to `prefetch_count` entries per XREADGROUP and runs their handlers concurrently.

* `auto_ack=True`: `handler(message)`; the entry is acknowledged (XACK + XDEL, so the stream does
  not grow) once the handler returned; a handler that raises sends it to `{queue}{dead_letter_suffix}`
  with the error.
* `auto_ack=False`: `handler(message, ack, nack)`; `await nack(requeue=True)` appends the message
  again at the tail of the queue, `nack(requeue=False)` dead-letters it. A handler that raises
  without settling dead-letters it; one that returns without settling leaves it pending, and it is
  delivered again after `claim_idle_ms`.
* A consumer that dies holds its entries pending; every consumer sweeps the group every
  `claim_interval` and takes over entries idle for `claim_idle_ms` (XAUTOCLAIM). An entry taken
  over more than `max_deliveries` times (a message that kills its consumer) is dead-lettered.
* Bodies that are not JSON are dead-lettered at once.

The redis.asyncio client runs on a blocking connection pool of `max_connections`; its errors are
translated into PublishError, SubscribeError and BrokerUnavailableError.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Self

from bento.adapters.redis._errors import unavailable
from bento.adapters.redis.settings import RedisWorkQueueSettings
from bento.application.credentials import mask_url
from bento.application.errors import (
    BrokerUnavailableError,
    BusClosedError,
    MissingExtraError,
    PublishError,
    SubscribeError,
)
from bento.application.ports.capabilities import HealthStatus

try:
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.exceptions import RedisError, ResponseError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("Redis work queue", "redis", "redis") from exc

logger = logging.getLogger(__name__)

WorkHandler = Callable[..., Awaitable[Any]]
Entry = tuple[bytes, dict[bytes, bytes]]


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisWorkQueueConsumer:
    """A running `consume`; `cancel()` stops reading and waits for running handlers."""

    def __init__(self, owner: RedisWorkQueue, queue: str, handler: WorkHandler, auto_ack: bool) -> None:
        self.queue_name, self._owner, self._handler, self._auto_ack = queue, owner, handler, auto_ack
        self._stream = owner.stream(queue)
        self._name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.processed = self.failed = 0

    async def start(self) -> None:
        settings, client = self._owner.settings, self._owner.client
        try:
            await client.xgroup_create(self._stream, settings.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise SubscribeError(self.queue_name, f"{type(exc).__name__}: {exc}") from exc
        except RedisError as exc:
            raise SubscribeError(self.queue_name, f"{type(exc).__name__}: {exc}") from exc
        self._task = asyncio.create_task(self._run(), name=f"work-queue:{self.queue_name}")

    async def _run(self) -> None:
        settings, client = self._owner.settings, self._owner.client
        next_sweep = time.monotonic() + settings.claim_interval
        while not self._stopping:
            try:
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + settings.claim_interval
                    entries = await self._reclaim()
                else:
                    reply: Any = await client.xreadgroup(
                        settings.group,
                        self._name,
                        {self._stream: ">"},
                        count=settings.prefetch_count,
                        block=settings.block_ms,
                    )
                    entries = reply[0][1] if reply else []
            except RedisError as exc:
                logger.warning("work queue %r: reading failed (%s); retrying in 1s", self.queue_name, exc)
                await asyncio.sleep(1.0)
                continue
            if entries:
                await asyncio.gather(*(self._process(entry_id, fields) for entry_id, fields in entries))

    async def _reclaim(self) -> list[Entry]:
        """Entries of consumers that died; those taken over too often are dead-lettered."""
        settings, client = self._owner.settings, self._owner.client
        reply: Any = await client.xautoclaim(
            self._stream,
            settings.group,
            self._name,
            settings.claim_idle_ms,
            "0-0",
            count=settings.prefetch_count,
        )
        entries: list[Entry] = [(i, f) for i, f in reply[1] if f]
        deleted = [i for i, f in reply[1] if not f] + list(reply[2] if len(reply) > 2 else [])
        if deleted:
            await client.xack(self._stream, settings.group, *deleted)
        if not entries:
            return []
        logger.warning("work queue %r: took over %d entries of a dead consumer", self.queue_name, len(entries))
        pending: Any = await client.xpending_range(
            self._stream,
            settings.group,
            min=entries[0][0],
            max=entries[-1][0],
            count=len(entries) * 2,
            consumername=self._name,
        )
        counts = {_decode(p["message_id"]): int(p["times_delivered"]) for p in pending}
        keep: list[Entry] = []
        for entry_id, fields in entries:
            if counts.get(_decode(entry_id), 0) > settings.max_deliveries:
                reason = f"taken over from dead consumers more than {settings.max_deliveries} times"
                await self._owner.settle(self._stream, entry_id, fields, dead=("PoisonMessageError", reason))
            else:
                keep.append((entry_id, fields))
        return keep

    async def _process(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        owner, settled = self._owner, False
        body = fields.get(b"body", b"")
        try:
            message = json.loads(body)
        except ValueError as exc:
            logger.error("work queue %r: dead-lettering a non-JSON message: %s", self.queue_name, exc)
            self.failed += 1
            await owner.settle(self._stream, entry_id, fields, dead=("DeserializationError", str(exc)))
            return

        async def ack() -> None:
            nonlocal settled
            if not settled:
                settled = True
                await owner.settle(self._stream, entry_id, fields)

        async def nack(requeue: bool = True) -> None:
            nonlocal settled
            if not settled:
                settled = True
                dead = None if requeue else ("Nacked", "nack(requeue=False)")
                await owner.settle(self._stream, entry_id, fields, requeue=requeue, dead=dead)

        try:
            async with asyncio.timeout(owner.settings.handler_timeout):
                if self._auto_ack:
                    await self._handler(message)
                else:
                    await self._handler(message, ack, nack)
        except Exception as exc:
            self.failed += 1
            logger.exception("work queue %r handler failed; dead-lettering the message", self.queue_name)
            if not settled:
                settled = True
                await owner.settle(self._stream, entry_id, fields, dead=(type(exc).__name__, str(exc)))
            return
        self.processed += 1
        if self._auto_ack:
            await ack()

    async def cancel(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        task = self._task
        if task is not None:
            limit = self._owner.settings.block_ms / 1000 + self._owner.settings.drain_timeout
            done, _ = await asyncio.wait({task}, timeout=limit)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._owner.forget(self)


class RedisWorkQueue:
    """Named durable work queues on Redis Streams; see the module docstring."""

    def __init__(self, settings: RedisWorkQueueSettings | None = None, *, client: Redis | None = None) -> None:
        self.settings = settings or RedisWorkQueueSettings()
        self._client, self._owns_client = client, client is None
        self._consumers: set[RedisWorkQueueConsumer] = set()
        self._started = self._closed = False

    def stream(self, queue: str) -> str:
        return f"{self.settings.key_prefix}{queue}"

    @property
    def client(self) -> Redis:
        if self._closed or not self._started or self._client is None:
            state = "closed" if self._closed else "not started (use `async with` or await start())"
            raise BusClosedError(f"the Redis work queue is {state}")
        return self._client

    async def start(self) -> None:
        """Connect and PING (BrokerUnavailableError when Redis does not answer)."""
        if self._closed:
            raise BusClosedError("this RedisWorkQueue was closed; build a new one")
        if self._started:
            return
        url = self.settings.url.get_secret_value()
        if self._client is None:
            pool = BlockingConnectionPool.from_url(url, max_connections=self.settings.max_connections, timeout=30)
            self._client = Redis(connection_pool=pool)
        try:
            await self._client.ping()
        except RedisError as exc:
            if self._owns_client:
                await self._client.aclose()
                self._client = None
            raise unavailable(mask_url(url), exc) from exc
        self._started = True

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every consumer (waiting for running handlers), then disconnect. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(consumer.cancel() for consumer in list(self._consumers)))
        if self._client is not None and self._owns_client:
            await self._client.aclose()

    def forget(self, consumer: RedisWorkQueueConsumer) -> None:
        self._consumers.discard(consumer)

    # -- producing --------------------------------------------------------------------
    async def publish(self, queue: str, message: Mapping[str, Any]) -> None:
        await self.publish_batch(queue, [message])

    async def publish_batch(self, queue: str, messages: Sequence[Mapping[str, Any]]) -> None:
        """Append every message in one pipelined round trip; returns once Redis has them."""
        try:
            bodies = [json.dumps(m, separators=(",", ":"), ensure_ascii=False) for m in messages]
        except (TypeError, ValueError) as exc:
            raise PublishError(queue, f"message is not JSON-serialisable: {exc}") from exc
        pipe = self.client.pipeline(transaction=False)
        for body in bodies:
            pipe.xadd(self.stream(queue), {"body": body}, maxlen=self.settings.maxlen, approximate=True)
        try:
            await pipe.execute()
        except RedisError as exc:
            raise PublishError(queue, f"{type(exc).__name__}: {exc}") from exc

    # -- consuming --------------------------------------------------------------------
    async def consume(self, queue: str, handler: WorkHandler, auto_ack: bool = True) -> RedisWorkQueueConsumer:
        """Start consuming `queue`; returns a handle whose `cancel()` stops it."""
        self.client  # noqa: B018 - raises BusClosedError before anything starts
        consumer = RedisWorkQueueConsumer(self, queue, handler, auto_ack)
        await consumer.start()
        self._consumers.add(consumer)
        return consumer

    async def settle(
        self,
        stream: str,
        entry_id: bytes,
        fields: Mapping[bytes, bytes],
        *,
        requeue: bool = False,
        dead: tuple[str, str] | None = None,
    ) -> None:
        """Acknowledge and delete an entry, first re-appending it (requeue) or copying it with
        the error to the dead-letter stream, atomically (MULTI)."""
        pipe = self.client.pipeline(transaction=True)
        body = fields.get(b"body", b"")
        if requeue:
            pipe.xadd(stream, {"body": body}, maxlen=self.settings.maxlen, approximate=True)
        elif dead is not None:
            record = {
                "body": body,
                "error_type": dead[0],
                "error_message": dead[1],
                "entry_id": entry_id,
                "failed_at": str(time.time()),
            }
            pipe.xadd(stream + self.settings.dead_letter_suffix, record)  # type: ignore[arg-type]
        pipe.xack(stream, self.settings.group, entry_id)
        pipe.xdel(stream, entry_id)
        try:
            await pipe.execute()
        except RedisError as exc:
            # The entry stays pending and is taken over after claim_idle_ms: delivered again, not lost.
            logger.warning("could not settle entry %s of %s (it will be redelivered): %s", entry_id, stream, exc)

    async def dead_letters(self, queue: str, limit: int = 100) -> list[dict[str, Any]]:
        """Dead-lettered messages of `queue`, oldest first: `message`, `error_type`, `error_message`."""
        try:
            entries: Any = await self.client.xrange(self.stream(queue) + self.settings.dead_letter_suffix, count=limit)
        except RedisError as exc:
            raise BrokerUnavailableError("Redis", "work queue", f"{type(exc).__name__}: {exc}") from exc
        found: list[dict[str, Any]] = []
        for _, fields in entries:
            body = fields.get(b"body", b"")
            try:
                message: Any = json.loads(body)
            except ValueError:
                message = body.decode(errors="replace")
            found.append(
                {
                    "message": message,
                    "error_type": _decode(fields.get(b"error_type", b"")),
                    "error_message": _decode(fields.get(b"error_message", b"")),
                }
            )
        return found

    async def health_check(self) -> HealthStatus:
        started = time.perf_counter()
        if self._closed or not self._started or self._client is None:
            return HealthStatus(False, "redis:work-queue", detail="closed" if self._closed else "not started")
        try:
            async with asyncio.timeout(5.0):
                await self._client.ping()
        except (RedisError, TimeoutError) as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return HealthStatus(False, "redis:work-queue", elapsed, f"{type(exc).__name__}: {exc}")
        return HealthStatus(True, "redis:work-queue", (time.perf_counter() - started) * 1000)
