"""One cached producer per topic, and sends that complete on the event loop.

`create_producer`, `flush` and `close` block, so they run in `asyncio.to_thread`.
Sends use `send_async`, called on the ClientCalls thread (see `_client_calls` for
why not on the loop); pulsar-client confirms on its IO thread, and the callback only hands the
result to the loop through the LoopBridge. `block_if_queue_full` is off, because it
would block; instead a semaphore keeps at most `max_pending_messages` sends
outstanding per bus, so the client queue never fills.
Producers use KeyBased batching: Pulsar needs it for Key_Shared subscribers (each
batch holds one key), and pulsar-lite stalls without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

import pulsar

from bento.adapters.messaging.pulsar._bridge import LoopBridge
from bento.adapters.messaging.pulsar._client_calls import ClientCalls
from bento.adapters.messaging.pulsar._errors import publish_error, translate_publish
from bento.adapters.messaging.pulsar.settings import PulsarSettings
from bento.domain.errors import BentoError

logger = logging.getLogger(__name__)

#: (body, partition key, properties) of one message to send.
Outgoing = tuple[bytes, str | None, Mapping[str, str] | None]

_CHUNK = 64  # messages encoded and queued between two turns of the event loop
_COMPRESSION = {
    "none": pulsar.CompressionType.NONE,
    "lz4": pulsar.CompressionType.LZ4,
    "zlib": pulsar.CompressionType.ZLib,
    "zstd": pulsar.CompressionType.ZSTD,
    "snappy": pulsar.CompressionType.SNAPPY,
}


class _Waiter:
    """Settles one future when every send of a batch was confirmed (or one failed)."""

    __slots__ = ("error", "future", "remaining", "slots", "topic", "url")

    def __init__(
        self, future: asyncio.Future[None], count: int, topic: str, url: str, slots: asyncio.Semaphore
    ) -> None:
        self.future, self.remaining, self.topic, self.url, self.slots = future, count, topic, url, slots
        self.error: BentoError | None = None

    def settle(self, result: pulsar.Result) -> None:
        self.slots.release()
        if result != pulsar.Result.Ok and self.error is None:
            self.error = publish_error(self.topic, self.url, result)
        self.remaining -= 1
        self._finish()

    def fail(self, error: BentoError, unsent: int) -> None:
        for _ in range(unsent):
            self.slots.release()
        self.error = self.error or error
        self.remaining -= unsent
        self._finish()

    def _finish(self) -> None:
        if self.remaining == 0 and not self.future.done():
            if self.error is None:
                self.future.set_result(None)
            else:
                self.future.set_exception(self.error)


class ProducerPool:
    """Producers by full topic name; `send` returns when the broker confirmed every message."""

    def __init__(
        self, client: pulsar.Client, settings: PulsarSettings, bridge: LoopBridge, calls: ClientCalls
    ) -> None:
        self._client, self._settings, self._bridge, self._calls = client, settings, bridge, calls
        self._producers: dict[str, pulsar.Producer] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(settings.max_pending_messages)

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
                    raise translate_publish(topic, self._settings.service_url, exc) from exc
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

    async def send(self, topic: str, messages: Iterable[Outgoing], count: int) -> None:
        """Queue `count` messages for the send thread and wait for all confirmations.

        `messages` may be a generator (the bus encodes lazily): every `_CHUNK`
        messages go to the send thread and the loop gets a turn."""
        if count == 0:
            return
        producer = await self.producer(topic)
        loop = asyncio.get_running_loop()
        url = self._settings.service_url
        waiter = _Waiter(loop.create_future(), count, topic, url, self._slots)
        submit, settle = self._bridge.submit, waiter.settle

        def confirmed(result: pulsar.Result, _message_id: object) -> None:
            submit(settle, result)  # pulsar IO thread: hand over, never raise

        def failed(exc: Exception, unsent: int) -> None:
            waiter.fail(translate_publish(topic, url, exc), unsent)

        chunk: list[Outgoing] = []
        try:
            for message in messages:
                await self._slots.acquire()
                chunk.append(message)
                if len(chunk) == _CHUNK:
                    self._calls.submit(_send_chunk, producer, chunk, confirmed, failed, self._bridge)
                    chunk = []
                    await asyncio.sleep(0)
        except BaseException:
            # Encoding failed or the caller was cancelled: what was queued still settles
            # (and frees its slots); free the slots of what never will, and forget the rest.
            for _ in chunk:
                self._slots.release()
            waiter.future.add_done_callback(_retrieve)
            raise
        if chunk:
            self._calls.submit(_send_chunk, producer, chunk, confirmed, failed, self._bridge)
        await waiter.future

    async def close(self) -> None:
        """Send what is queued, then flush and close every producer (blocking calls, in threads)."""
        await self._calls.barrier()
        producers, self._producers = list(self._producers.values()), {}
        await asyncio.gather(*(asyncio.to_thread(_flush_and_close, p) for p in producers))


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # nobody awaits it any more; this marks the error as seen


def _send_chunk(
    producer: pulsar.Producer,
    messages: list[Outgoing],
    confirmed: Callable[[pulsar.Result, object], None],
    failed: Callable[[Exception, int], None],
    bridge: LoopBridge,
) -> None:
    """On the ClientCalls thread: hand each message to pulsar-client."""
    for index, (body, key, properties) in enumerate(messages):
        try:
            producer.send_async(body, confirmed, properties=properties, partition_key=key)
        except (pulsar.PulsarException, TypeError, ValueError) as exc:
            bridge.submit(failed, exc, len(messages) - index)
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
