"""Hand-off of received messages to handler workers on the event loop, without per-message objects.

A receiver thread delivers whole batches; `Lane.extend` appends them to a deque and
wakes idle workers (one future per idle worker, not per message). Workers pop from
the deque and run handlers inline, so a message costs a `popleft`, not an
`asyncio.Queue` round trip.

`TimeSlice` keeps the event loop responsive without yielding after every message
(which cost a whole loop iteration, an epoll call, per message): the workers of one
subscription share a slice of `SLICE_SECONDS`; once it is spent, each worker yields,
and the next turn of the loop starts a new slice. A handler that never suspends thus
holds the loop for about one slice, whatever the number of workers.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterable
from typing import Any

#: Handler work per subscriber between two turns of the event loop (the lag it can cause).
SLICE_SECONDS = 0.0005


class Lane:
    """Messages waiting for the workers of one lane, and the workers waiting for messages."""

    __slots__ = ("_idle", "messages")

    def __init__(self) -> None:
        self.messages: collections.deque[Any] = collections.deque()
        self._idle: list[asyncio.Future[None]] = []

    def extend(self, messages: Iterable[Any]) -> None:
        self.messages.extend(messages)
        idle, self._idle = self._idle, []
        for waiter in idle:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        """Return once messages were added (the caller checks `messages` again)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        await waiter


class TimeSlice:
    """A budget of loop time shared by the workers of one subscription (see the module doc)."""

    __slots__ = ("_end", "_loop", "_renewing")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._end = 0.0
        self._renewing = False

    def spent(self) -> bool:
        """True when the caller must yield (`await asyncio.sleep(0)`) before the next message."""
        if time.monotonic() < self._end:
            return False
        if not self._renewing:
            # Runs at the start of the next turn, before the workers that yield now.
            self._renewing = True
            self._loop.call_soon(self._renew)
        return True

    def _renew(self) -> None:
        self._renewing = False
        self._end = time.monotonic() + SLICE_SECONDS
