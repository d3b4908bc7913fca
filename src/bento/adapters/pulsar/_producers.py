"""One cached producer per topic, and sends that complete on the event loop.

`create_producer`, `flush` and `close` block, so they run in `asyncio.to_thread`.
Messages are encoded on the loop and go out in chunks of `_CHUNK`: the ClientCalls
thread calls `send_async` for a whole chunk in one hop (see `_client_calls` for why
not on the loop). pulsar-client confirms each message on its IO thread, where the
callback only counts (and notes a failure): the last confirmation of a chunk makes
the one `call_soon_threadsafe` (through the LoopBridge) that settles the chunk on
the loop. Python work on the IO thread takes
the GIL from the loop, so it is kept to a counter increment.
`block_if_queue_full` is off, because it would block the loop; instead the pool
keeps at most `max_pending_messages` sends outstanding per bus (reserved per chunk),
so the client queue never fills.
Producers use KeyBased batching: Pulsar needs it for Key_Shared subscribers (each
batch holds one key), and pulsar-lite stalls without it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping, Sequence

import pulsar

from bento.adapters.pulsar._bridge import LoopBridge
from bento.adapters.pulsar._client_calls import ClientCalls
from bento.adapters.pulsar._errors import publish_error, translate_publish
from bento.adapters.pulsar.settings import PulsarSettings
from bento.domain.errors import BentoError

logger = logging.getLogger(__name__)

#: (body, partition key, properties) of one message to send.
Outgoing = tuple[bytes, str | None, Mapping[str, str] | None]

_CHUNK = 64  # messages encoded and sent between two turns of the event loop
_OK = pulsar.Result.Ok
_COMPRESSION = {
    "none": pulsar.CompressionType.NONE,
    "lz4": pulsar.CompressionType.LZ4,
    "zlib": pulsar.CompressionType.ZLib,
    "zstd": pulsar.CompressionType.ZSTD,
    "snappy": pulsar.CompressionType.SNAPPY,
}


class _Waiter:
    """Settles one future when every chunk of a send was confirmed (or failed)."""

    __slots__ = ("error", "future", "remaining")

    def __init__(self, future: asyncio.Future[None], count: int) -> None:
        self.future, self.remaining = future, count
        self.error: BentoError | None = None

    def settle(self, count: int, error: BentoError | None) -> None:
        self.error = self.error or error
        self.remaining -= count
        if self.remaining == 0 and not self.future.done():
            if self.error is None:
                self.future.set_result(None)
            else:
                self.future.set_exception(self.error)


class _Chunk:
    """Up to `_CHUNK` sends; `confirmed` runs on pulsar-client's IO thread, once per message.

    `next()` on an `itertools.count` is atomic under the GIL, so the callback needs no
    lock, and only the last confirmation crosses to the loop."""

    __slots__ = ("_bridge", "_counter", "_done", "failures", "size")

    def __init__(self, size: int, bridge: LoopBridge, done: _ChunkDone) -> None:
        self.size, self._bridge, self._done = size, bridge, done
        self._counter = itertools.count(1)
        self.failures: list[pulsar.Result | Exception] = []

    def confirmed(self, result: pulsar.Result, _message_id: object) -> None:
        if result != _OK:
            self.failures.append(result)
        if next(self._counter) == self.size:
            self._bridge.submit(self._done, self)

    def unsent(self, exc: Exception, count: int) -> None:
        """`count` messages were never handed to the client (send_async raised)."""
        self.failures.append(exc)
        for _ in range(count):
            if next(self._counter) == self.size:
                self._bridge.submit(self._done, self)


class _ChunkDone:
    """On the loop: free a finished chunk's slots and report it to its waiter."""

    __slots__ = ("pool", "topic", "waiter")

    def __init__(self, pool: ProducerPool, waiter: _Waiter, topic: str) -> None:
        self.pool, self.waiter, self.topic = pool, waiter, topic

    def __call__(self, chunk: _Chunk) -> None:
        self.pool.release(chunk.size)
        error: BentoError | None = None
        if chunk.failures:
            first = chunk.failures[0]
            url = self.pool.service_url
            if isinstance(first, Exception):
                error = translate_publish(self.topic, url, first)
            else:
                error = publish_error(self.topic, url, first)
        self.waiter.settle(chunk.size, error)


class ProducerPool:
    """Producers by full topic name; `send` returns when the broker confirmed every message."""

    def __init__(self, client: pulsar.Client, settings: PulsarSettings, bridge: LoopBridge, calls: ClientCalls) -> None:
        self._client, self._settings, self._bridge, self._calls = client, settings, bridge, calls
        self.service_url = str(settings.service_url)  # masked: only ever quoted in errors
        self._producers: dict[str, pulsar.Producer] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._limit = settings.max_pending_messages
        self._pending = 0
        self._room: list[asyncio.Future[None]] = []

    def all(self) -> list[pulsar.Producer]:
        return list(self._producers.values())

    async def producer(self, topic: str) -> pulsar.Producer:
        producer = self._producers.get(topic)
        if producer is not None:
            return producer
        lock = self._locks.setdefault(topic, asyncio.Lock())
        async with lock:
            producer = self._producers.get(topic)
            if producer is None:
                try:
                    producer = await asyncio.to_thread(self._create, topic)
                except pulsar.PulsarException as exc:
                    raise translate_publish(topic, self.service_url, exc) from exc
                self._producers[topic] = producer
        return producer

    def _create(self, topic: str) -> pulsar.Producer:
        s = self._settings
        return self._client.create_producer(
            topic,
            send_timeout_millis=s.send_timeout_ms,
            compression_type=_COMPRESSION[s.compression],
            max_pending_messages=s.max_pending_messages,
            block_if_queue_full=False,
            batching_enabled=s.batching_enabled,
            batching_max_messages=s.batching_max_messages,
            batching_max_allowed_size_in_bytes=s.batching_max_bytes,
            batching_max_publish_delay_ms=s.batching_max_publish_delay_ms,
            batching_type=pulsar.BatchingType.KeyBased,
        )

    async def send(self, topic: str, messages: Sequence[Outgoing]) -> None:
        """Send `messages` (already encoded) and wait until the broker confirmed all of them.

        Every `_CHUNK` messages are handed to the client and the loop gets a turn."""
        if not messages:
            return
        producer = await self.producer(topic)
        waiter = _Waiter(asyncio.get_running_loop().create_future(), len(messages))
        done = _ChunkDone(self, waiter, topic)
        try:
            for start in range(0, len(messages), _CHUNK):
                if start:
                    await asyncio.sleep(0)
                await self._send_chunk(producer, messages[start : start + _CHUNK], done)
        except BaseException:
            # The caller was cancelled: chunks already sent still settle (and free their
            # slots); nobody awaits the outcome any more.
            waiter.future.add_done_callback(_retrieve)
            raise
        await waiter.future

    async def _send_chunk(self, producer: pulsar.Producer, chunk: Sequence[Outgoing], done: _ChunkDone) -> None:
        await self._reserve(len(chunk))
        self._calls.submit(_send_all, producer, chunk, _Chunk(len(chunk), self._bridge, done))

    async def _reserve(self, count: int) -> None:
        """Wait until `count` more sends fit under `max_pending_messages` (one chunk always fits)."""
        while self._pending and self._pending + count > self._limit:
            room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room.append(room)
            await room
        self._pending += count

    def release(self, count: int) -> None:
        self._pending -= count
        room, self._room = self._room, []
        for future in room:
            if not future.done():
                future.set_result(None)

    def stop_sending(self) -> None:
        """End the ClientCalls thread after its queued calls (blocking: call it in a thread)."""
        self._calls.stop()

    async def close(self) -> None:
        """Send what is queued, then flush and close every producer (blocking calls, in threads)."""
        await self._calls.barrier()
        producers, self._producers = list(self._producers.values()), {}
        await asyncio.gather(*(asyncio.to_thread(_flush_and_close, p) for p in producers))


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # nobody awaits it any more; this marks the error as seen


def _send_all(producer: pulsar.Producer, chunk: Sequence[Outgoing], tracker: _Chunk) -> None:
    """On the ClientCalls thread: hand each message of a chunk to pulsar-client."""
    confirmed, send_async = tracker.confirmed, producer.send_async
    for index, (body, key, properties) in enumerate(chunk):
        try:
            send_async(body, confirmed, properties=properties, partition_key=key)
        except (pulsar.PulsarException, TypeError, ValueError) as exc:
            tracker.unsent(exc, len(chunk) - index)
            return


def _flush_and_close(producer: pulsar.Producer) -> None:
    try:
        producer.flush()
    except pulsar.PulsarException as exc:
        logger.warning("flushing the Pulsar producer of %s failed: %r", producer.topic(), exc)
    try:
        producer.close()
    except pulsar.PulsarException as exc:
        logger.warning("closing the Pulsar producer of %s failed: %r", producer.topic(), exc)
