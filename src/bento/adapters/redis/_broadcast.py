"""BroadcastSubscription: a MessageBus subscriber on Redis pub/sub (at-most-once).

Every subscriber gets every message published while it is subscribed; `group` is kept
as a label only (pub/sub has no competing consumers). Messages wait in a bounded
per-subscriber queue handled in order by one task; when the queue is full the oldest
message is dropped and counted (`dropped`), because a slow subscriber must not stall
the shared connection or the other subscribers. A handler failure is logged and the
message is gone: there is no redelivery and no dead-letter path in this mode.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from bento.adapters.redis._durable import DurableContext, Loop
from bento.adapters.redis._keys import is_pattern
from bento.adapters.redis._pubsub import PubSubHub
from bento.adapters.shared.delivery import Action, handle_delivery
from bento.application.ports.message_bus import MessageHandler
from bento.application.retry import RetryPolicy

logger = logging.getLogger(__name__)
_ONCE = RetryPolicy(max_attempts=1, delays=())


class BroadcastSubscription:
    def __init__(
        self,
        ctx: DurableContext,
        hub: PubSubHub,
        topic: str,
        handler: MessageHandler,
        group: str | None,
        forget: Callable[[object], None],
    ) -> None:
        self._ctx, self._hub, self._topic, self._handler, self._group = ctx, hub, topic, handler, group
        self._forget = forget
        self._queue: deque[tuple[str, bytes]] = deque(maxlen=ctx.settings.queue_size)
        self._ready = asyncio.Event()
        self._worker = Loop()
        self._prefix = len(ctx.keys.prefix.encode())
        self._token: object = None
        self._cancelled = False
        self.dropped = 0

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def group(self) -> str | None:
        return self._group

    async def start(self) -> None:
        pattern = is_pattern(self._topic)
        name = self._ctx.keys.channel_pattern(self._topic) if pattern else self._ctx.keys.channel(self._topic)
        self._worker.task = self._ctx.supervisor.spawn(
            f"broadcast worker of {self._topic!r}", self._work, stopping=self._worker.stopped
        )
        self._token = await self._hub.add(name, pattern=pattern, listener=self._enqueue)

    def _enqueue(self, channel: bytes, pattern: bytes | None, data: bytes) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            if self.dropped & (self.dropped - 1) == 0:  # log at 1, 2, 4, 8 … drops
                logger.warning("subscriber of %r is too slow: %d message(s) dropped", self._topic, self.dropped)
        self._queue.append((channel[self._prefix :].decode(errors="replace"), data))
        self._ready.set()

    async def _work(self) -> None:
        while not self._worker.stopping:
            if not self._queue:
                self._ready.clear()
                with self._worker.waiting():
                    await self._ready.wait()
                continue
            topic, body = self._queue.popleft()
            self._ctx.in_flight += 1
            self._ctx.idle.clear()
            try:
                verdict = await handle_delivery(
                    self._ctx.codec,
                    self._handler,
                    body,
                    attempt=1,
                    policy=_ONCE,
                    timeout=self._ctx.settings.handler_timeout,
                    topic=topic,
                    max_bytes=self._ctx.settings.max_message_bytes,
                    system="redis",
                    group=self._group,
                )
            finally:
                self._ctx.in_flight -= 1
                if self._ctx.in_flight == 0:
                    self._ctx.idle.set()
            counters = self._ctx.supervisor.counters
            if verdict.action is Action.ACK:
                counters.messages_consumed += 1
            else:
                counters.consume_errors += 1
            if verdict.action is Action.DEAD:
                logger.error(
                    "broadcast message on %r dropped after a failure (%s: %s); pub/sub has no redelivery",
                    topic,
                    verdict.error_type,
                    verdict.error_message,
                )

    async def cancel(self) -> None:
        """Unsubscribe, finish the message in hand; messages still queued are dropped."""
        if self._cancelled:
            return
        self._cancelled = True
        self._forget(self)
        if self._token is not None:
            await self._hub.remove(self._token)  # type: ignore[arg-type]
        await self._worker.stop(self._ctx.settings.drain_timeout)
        if self._queue:
            logger.info("subscriber of %r cancelled with %d undelivered message(s)", self._topic, len(self._queue))
            self._queue.clear()
