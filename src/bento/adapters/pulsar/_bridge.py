"""Hand-off from pulsar-client's threads to the event loop.

pulsar-client runs send callbacks on its IO thread and our receivers on their own
threads. Every cross-thread call goes through `LoopBridge.submit`, which queues the
call and wakes the loop with at most one `call_soon_threadsafe` per burst: under load
thousands of confirmations or messages cost one wake-up, not one each. Nothing here
blocks the loop: the lock is only held to swap a list.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class LoopBridge:
    """Run callables submitted from any thread on one event loop, in submission order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._scheduled = False

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Thread-safe; never raises (pulsar-client aborts the process if a callback does)."""
        with self._lock:
            self._pending.append((fn, args))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            # The loop is closed: nobody awaits these results any more.
            logger.warning("event loop closed; dropped %d pulsar callback(s)", len(self._pending))

    def _drain(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._scheduled = False
        for fn, args in batch:
            try:
                fn(*args)
            except Exception:
                logger.exception("pulsar callback %r failed", fn)
