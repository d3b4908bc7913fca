"""Publishes share round trips: at most `slots` pipelines in flight, later publishes queue.

A publish with a free slot sends its own pipeline at once (no added latency when the bus is
quiet). While every slot is busy, publishes queue, and the next free slot sends everything
queued as one pipeline: under load a round trip carries many publishes, and the bus never
needs more than `slots` connections for publishing, however many callers publish at once
(redis-py's pool refuses a connection beyond its size: MaxConnectionsError).

Each publish gets its own outcome: the replies of its commands are checked separately, so one
refused XADD fails that publish only; a broken connection fails every publish of the pipeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

#: Adds one publish's commands to a pipeline and says how many it added.
Commands = Callable[[Pipeline], int]


class Pipeliner:
    def __init__(self, redis: Redis, slots: int) -> None:
        self._redis, self._slots = redis, slots
        self._busy = 0
        self._queue: list[tuple[Commands, asyncio.Future[None]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def send(self, commands: Commands) -> None:
        """Run `commands` (one publish) in a pipeline; raises the first error among its replies."""
        if self._busy < self._slots and not self._queue:
            self._busy += 1
            try:
                outcomes = await self._execute([commands])
            finally:
                self._release()
            if outcomes[0] is not None:
                raise outcomes[0]
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((commands, future))
        if self._busy < self._slots:
            self._flush_queued()
        await future

    def _release(self) -> None:
        self._busy -= 1
        if self._queue and self._busy < self._slots:
            self._flush_queued()

    def _flush_queued(self) -> None:
        # In a task of its own: the queued publishers' outcomes must not depend on whether the
        # publisher who freed the slot is cancelled.
        self._busy += 1
        batch, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[Commands, asyncio.Future[None]]]) -> None:
        try:
            batch = [(commands, future) for commands, future in batch if not future.done()]  # not cancelled
            outcomes = await self._execute([commands for commands, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if outcome is None:
                    future.set_result(None)
                else:
                    future.set_exception(outcome)
        finally:
            self._release()

    async def _execute(self, publishes: list[Commands]) -> list[Exception | None]:
        """One pipeline for every publish; per publish, None or the first error among its replies."""
        if not publishes:
            return []
        counts: list[int] = []
        async with self._redis.pipeline(transaction=False) as pipe:
            for commands in publishes:
                counts.append(commands(pipe))
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        outcomes: list[Exception | None] = []
        start = 0
        for count in counts:
            error = next((r for r in replies[start : start + count] if isinstance(r, Exception)), None)
            outcomes.append(error)
            start += count
        return outcomes

    async def close(self) -> None:
        """Wait for queued publishes to go out (they were accepted by `send`)."""
        if self._flushes:
            await asyncio.gather(*list(self._flushes), return_exceptions=True)
