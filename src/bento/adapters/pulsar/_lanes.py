"""Hand-off of received messages to handler workers on the event loop, without per-message objects.

A receiver thread delivers whole batches; `Lane.extend` appends them to a deque and
wakes one idle worker. Workers pop from the deque and run handlers inline, so a
message costs a `popleft`, not an `asyncio.Queue` round trip. A worker that pops a
message while more are waiting wakes one more idle worker (`Lane.wake_one`) before
running the handler: if that handler suspends, the woken worker carries on, so
concurrency grows only as far as handlers actually wait. Handlers that never
suspend are thus run by one or two workers, not by all of them taking turns (the
idle ones waking every loop turn cost more loop steps than there were messages).

`TimeSlice` keeps the event loop responsive without yielding after every message
(which cost a whole loop iteration, an epoll call, per message): the workers of one
subscription share a slice of `SLICE_SECONDS`; once it is spent, each worker yields,
and the next turn of the loop starts a new slice. A handler that never suspends thus
holds the loop for about one slice, whatever the number of workers. Only one worker
per lane yields to come back next turn (`Lane.resuming`); the others that find the
slice spent park as idle workers until a worker or a new batch wakes them.
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

    __slots__ = ("_idle", "_waking", "messages", "resuming")

    def __init__(self) -> None:
        self.messages: collections.deque[Any] = collections.deque()
        self._idle: list[asyncio.Future[None]] = []
        #: A worker of this lane yielded and comes back next turn (the others may park).
        self.resuming = False
        self._waking = False  # a woken worker has not run yet: waking another would only cost a step

    def extend(self, messages: Iterable[Any]) -> None:
        self.messages.extend(messages)
        self.wake_one()

    def wake_one(self) -> None:
        """Wake one idle worker, if any and none is waking yet (it checks `messages` itself)."""
        if self._waking:
            return
        idle = self._idle
        while idle:
            waiter = idle.pop()
            if not waiter.done():
                waiter.set_result(None)
                self._waking = True
                return

    async def wait(self) -> None:
        """Park as an idle worker until `wake_one` picks this one (the caller checks `messages` again)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        try:
            await waiter
        finally:
            if waiter.done():
                self._waking = False


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
