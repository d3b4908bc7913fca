"""The Redis bus's DirectReplyPort: each process reads its replies from a private stream.

`open_replies` creates `{prefix}reply:{id}` (one entry that marks it open) and reads it with a
plain blocking XREAD from the last id seen: no consumer group, no XACK, no pending entries, one
round trip per batch of replies. Its address is the topic `~reply.{id}`; the bus's `publish` to
such a topic appends with NOMKSTREAM, so a reply to a process whose stream is gone is dropped
(the caller gets CommandTimeoutError) instead of creating a stream nobody reads.

The stream expires `REPLY_TTL` seconds after the reader last refreshed it, so a process that
dies leaves nothing behind for long; entries already read are trimmed as the reader goes, and
MAXLEN bounds a stream whose reader fell behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from bento.adapters.redis._durable import DurableContext, Loop, _body_and_headers, batches
from bento.adapters.redis._errors import UNREACHABLE
from bento.application.errors import DeserializationError
from bento.application.ports.message_bus import MessageHandler

logger = logging.getLogger(__name__)

#: Topic prefix of a reply address (`publish` appends to that process's reply stream).
REPLY_TOPIC_PREFIX = "~reply."
#: Seconds a reply stream outlives its reader's last refresh.
REPLY_TTL = 300
#: Entries a reply stream keeps at most (approximate), should its reader fall behind.
REPLY_MAXLEN = 10_000
_REFRESH_EVERY = 30.0
_TRIM_EVERY = 1_000
_OPENED = {b"o": b"1"}


def is_reply_address(topic: str) -> bool:
    return topic.startswith(REPLY_TOPIC_PREFIX)


def reply_stream(ctx: DurableContext, topic: str) -> str:
    return f"{ctx.keys.prefix}reply:{topic[len(REPLY_TOPIC_PREFIX) :]}"


class RedisReplies:
    """Opens reply streams for one bus (the bus's `direct_reply`)."""

    def __init__(self, ctx: DurableContext) -> None:
        self._ctx = ctx

    async def open_replies(self, handler: MessageHandler) -> ReplyStream:
        stream = ReplyStream(self._ctx, REPLY_TOPIC_PREFIX + uuid.uuid4().hex, handler)
        await stream.start()
        return stream


class ReplyStream:
    """One process's reply stream and its reader (a Subscription: `topic` is the address)."""

    def __init__(self, ctx: DurableContext, address: str, handler: MessageHandler) -> None:
        self._ctx, self._address, self._handler = ctx, address, handler
        self._key = reply_stream(ctx, address)
        self._reader = Loop()
        self._last: bytes = b"0-0"
        self._refresh_at = 0.0
        self._read_since_trim = 0
        self.malformed = 0

    @property
    def topic(self) -> str:
        return self._address

    @property
    def group(self) -> str | None:
        return None

    async def start(self) -> None:
        await self._open()
        self._reader.task = self._ctx.supervisor.spawn(
            f"replies of {self._address!r}", self._read_forever, stopping=self._reader.stopped
        )

    async def _open(self) -> None:
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self._key, _OPENED)  # type: ignore[arg-type]
            pipe.expire(self._key, REPLY_TTL)
            opened, _ = await pipe.execute()
        if self._last == b"0-0":
            self._last = opened
        self._refresh_at = time.monotonic() + _REFRESH_EVERY

    async def _read_forever(self) -> None:
        redis, block = self._ctx.redis, self._ctx.settings.block_ms
        while not self._reader.stopping:
            try:
                with self._reader.waiting():
                    reply = await redis.xread({self._key: self._last}, count=256, block=block)
                for _, batch in batches(reply):
                    for entry_id, fields in batch:
                        self._last = entry_id
                        await self._deliver(fields)
                    self._read_since_trim += len(batch)
                if self._read_since_trim >= _TRIM_EVERY:
                    self._read_since_trim = 0
                    await redis.xtrim(self._key, minid=self._last)
                if time.monotonic() >= self._refresh_at:
                    self._refresh_at = time.monotonic() + _REFRESH_EVERY
                    if not await redis.expire(self._key, REPLY_TTL):
                        logger.warning("reply stream %r vanished (a Redis restart?); opening it again", self._key)
                        await self._open()
            except UNREACHABLE as exc:
                logger.warning("Redis unreachable while reading replies (%s); retrying", exc)
                with self._reader.waiting():
                    await asyncio.sleep(0.5)

    async def _deliver(self, fields: dict[bytes, bytes]) -> None:
        if b"b" not in fields:
            return  # the entry that opened the stream
        try:
            body, headers = _body_and_headers(fields)
            reply = self._ctx.codec.decode(body, headers)
        except DeserializationError as exc:
            self.malformed += 1
            logger.warning("dropped an undecodable reply on %r: %s", self._key, exc)
            return
        await self._handler(reply)

    async def cancel(self) -> None:
        await self._reader.stop(self._ctx.settings.drain_timeout)
        try:
            await self._ctx.redis.delete(self._key)
        except UNREACHABLE as exc:
            logger.info("could not delete reply stream %r (it expires by itself): %s", self._key, exc)
