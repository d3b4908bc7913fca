"""InProcessStreamLock: per-stream asyncio locks, for one process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from contextlib import AsyncExitStack, asynccontextmanager

from bento.application.errors import LockTimeoutError


class InProcessStreamLock:
    """Mutual exclusion between tasks of one event loop (not between processes)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, streams: Collection[str], *, timeout: float = 10.0) -> AsyncIterator[None]:
        ordered = sorted(set(streams))
        async with AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(timeout):
                    for stream in ordered:
                        lock = self._locks.setdefault(stream, asyncio.Lock())
                        await lock.acquire()
                        stack.callback(self._release, stream, lock)
            except TimeoutError:
                raise LockTimeoutError(ordered, timeout) from None
            yield

    def _release(self, stream: str, lock: asyncio.Lock) -> None:
        lock.release()
        if not lock.locked() and not getattr(lock, "_waiters", None):
            self._locks.pop(stream, None)
