"""The thread that calls `send_async` on the event loop's behalf.

While pulsar-client's IO thread runs send callbacks (one per confirmed message, each
taking the GIL), `send_async` on the loop measured 3-13 ms per chunk of 64 messages
(event-loop lag p99 21 ms while publishing), against under 1 ms when this thread makes
the calls. So the loop only queues chunks; this one thread sends them in queue order
(per-key publish order is kept). Acks and nacks do not need it: they stay on the loop
(see `_subscription`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

from bento.adapters.pulsar._bridge import LoopBridge

logger = logging.getLogger(__name__)


class ClientCalls:
    """A FIFO of client calls worked off by one daemon thread."""

    def __init__(self, bridge: LoopBridge) -> None:
        self._bridge = bridge
        self._calls: collections.deque[tuple[Callable[..., None], tuple[Any, ...]]] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="bento-pulsar-calls", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Queue `fn(*args)`; non-blocking (deque appends are atomic). `fn` handles its own errors."""
        self._calls.append((fn, args))
        self._wake.set()

    async def barrier(self) -> None:
        """Wait until every call queued before this one was made."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.submit(self._bridge.submit, _resolve, done)
        await done

    def _run(self) -> None:
        calls = self._calls
        while True:
            self._wake.wait()
            self._wake.clear()
            while calls:
                fn, args = calls.popleft()
                try:
                    fn(*args)
                except Exception:
                    # Callers catch what they expect; anything else must not kill the thread.
                    logger.exception("pulsar client call %r failed", fn)
            if self._stopping and not calls:
                return

    def stop(self) -> None:
        """Make the queued calls, then end the thread (blocking: call it in a thread)."""
        self._stopping = True
        self._wake.set()
        self._thread.join()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
