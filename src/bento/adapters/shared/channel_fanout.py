"""QueuedSubscription and Fanout: what the memory and Redis channels share.

Each subscription owns a bounded deque. Publishing offers a message to every
matching subscription without awaiting anything; when a deque is full the oldest
message is dropped and counted, so one stalled reader costs at most `queue_size`
messages of memory and delays nobody. (Dropping the oldest keeps a live view
current, which is what SSE clients want; the drop count tells the reader it missed
some, e.g. to reload the page state.)
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Self

from bento.application.errors import BusClosedError
from bento.application.ports.channel import ChannelMessage

logger = logging.getLogger(__name__)

Hook = Callable[["QueuedSubscription"], Awaitable[None]]


class QueuedSubscription:
    """A ChannelSubscription whose listening is set up and torn down by the adapter's hooks."""

    def __init__(self, target: str, *, pattern: bool, queue_size: int, register: Hook, unregister: Hook) -> None:
        self.target, self.pattern = target, pattern
        self._queue: deque[ChannelMessage] = deque(maxlen=queue_size)
        self._wakeup = asyncio.Event()
        self._register, self._unregister = register, unregister
        self._started = self._ended = self._closed = False
        self._dropped = 0

    @property
    def dropped(self) -> int:
        return self._dropped

    def offer(self, message: ChannelMessage) -> None:
        """Queue a message; never blocks. Called by the adapter on the event loop."""
        if len(self._queue) == self._queue.maxlen:
            self._dropped += 1
            if self._dropped & (self._dropped - 1) == 0:  # log at 1, 2, 4, 8 … drops
                logger.warning("subscriber of %r is not reading: %d message(s) dropped", self.target, self._dropped)
        self._queue.append(message)
        self._wakeup.set()

    def end(self) -> None:
        """The channel is closing: iteration stops once the queued messages are read."""
        self._ended = True
        self._wakeup.set()

    async def start(self) -> None:
        """Begin listening (idempotent); messages published after this are received."""
        if self._closed:
            raise BusClosedError(f"subscription to {self.target!r} was closed")
        if not self._started:
            self._started = True
            await self._register(self)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ended = True
        self._wakeup.set()
        if self._started:
            await self._unregister(self)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[ChannelMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ChannelMessage]:
        # A generator, so that leaving `async for` (break, error, a disconnected SSE client's
        # task being cancelled, or garbage collection) closes the subscription.
        await self.start()
        try:
            while (message := await self._next()) is not None:
                yield message
        finally:
            await self.aclose()

    async def receive(self, within: float | None = None) -> ChannelMessage | None:
        """The next message, or None if none came `within` seconds (the subscription
        stays open: use this for SSE keep-alives). Raises BusClosedError once it has ended."""
        await self.start()
        try:
            async with asyncio.timeout(within):
                message = await self._next()
        except TimeoutError:
            return None
        if message is None:
            raise BusClosedError(f"subscription to {self.target!r} has ended")
        return message

    async def _next(self) -> ChannelMessage | None:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._ended:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()


class Fanout:
    """Local subscriptions by exact channel and by pattern."""

    def __init__(self) -> None:
        self.channels: dict[str, set[QueuedSubscription]] = {}
        self.patterns: dict[str, set[QueuedSubscription]] = {}

    def add(self, sub: QueuedSubscription) -> bool:
        """Add `sub`; True when it is the first for its channel or pattern."""
        table = self.patterns if sub.pattern else self.channels
        subs = table.setdefault(sub.target, set())
        subs.add(sub)
        return len(subs) == 1

    def remove(self, sub: QueuedSubscription) -> bool:
        """Remove `sub`; True when it was the last for its channel or pattern."""
        table = self.patterns if sub.pattern else self.channels
        subs = table.get(sub.target)
        if subs is None or sub not in subs:
            return False
        subs.discard(sub)
        if subs:
            return False
        del table[sub.target]
        return True

    def offer(self, subs: set[QueuedSubscription] | None, message: ChannelMessage) -> None:
        for sub in list(subs or ()):
            sub.offer(message)

    def end_all(self) -> None:
        for table in (self.channels, self.patterns):
            for subs in table.values():
                for sub in subs:
                    sub.end()
            table.clear()

    def count(self) -> int:
        return sum(len(s) for s in self.channels.values()) + sum(len(s) for s in self.patterns.values())
