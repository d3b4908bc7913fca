"""Per-key parallelism inside one consumer: a lane per (partition, key), served by a few workers.

Kafka orders a partition, but most handlers only need order per key (per aggregate), and
a slow handler on one key should not hold every other key of its partition back. Each
received message joins the lane of its partition and key; `workers` tasks take a lane
that is ready, run its head message, and put the lane back at the end of the queue, so
different keys run concurrently (at most `workers` at once) while one key never runs two
messages at once and keeps its order. A message that must be retried keeps its lane (and
so its key's later messages) waiting for the back-off on a timer, not on a worker: the
other keys of the partition keep flowing. Messages without a key each get a lane.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bento.adapters.kafka._offsets import PartitionOffsets
from bento.adapters.shared.delivery import Verdict

logger = logging.getLogger(__name__)

#: Messages of one lane a worker handles before it puts the lane back in the queue.
TURN = 32


@dataclass(eq=False, slots=True)
class Job:
    """One received record and what is known of its handling so far."""

    partition: Any  # aiokafka's TopicPartition (hashable)
    offset: int
    key: bytes | None
    body: bytes
    headers: Sequence[tuple[str, bytes]]
    offsets: PartitionOffsets
    timestamp: int = -1  # the record's, in ms since the epoch (-1: none)
    attempt: int = 1
    dead: Verdict | None = field(default=None)
    #: When the first attempt failed (ISO 8601), carried to the dead letter.
    first_failed_at: str | None = None


#: Runs one job: None when it is settled, else the seconds to wait before running it again.
Runner = Callable[[Job], Awaitable[float | None]]


class Lanes:
    """The lanes of one subscriber and the workers that serve them."""

    def __init__(self, workers: int, run: Runner, *, name: str) -> None:
        self._run = run
        self._lanes: dict[Hashable, deque[Job]] = {}
        self._ready: asyncio.Queue[tuple[Hashable, deque[Job]]] = asyncio.Queue()
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._running: dict[Any, int] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers = [asyncio.create_task(self._work(), name=f"{name}:worker{n}") for n in range(workers)]

    def submit(self, job: Job) -> None:
        lane_key: Hashable = (job.partition, job.key if job.key is not None else job.offset)
        lane = self._lanes.get(lane_key)
        if lane is None:
            lane = self._lanes[lane_key] = deque((job,))
            self._ready.put_nowait((lane_key, lane))
        else:
            lane.append(job)  # the lane is queued, running or waiting for a retry already

    def drop(self, partitions: Iterable[Any] | None = None) -> None:
        """Forget the messages of `partitions` (all when None) that are not running: they
        were not committed, so whoever reads the partition next gets them again."""
        wanted = None if partitions is None else set(partitions)
        for lane_key in [k for k in self._lanes if wanted is None or k[0] in wanted]:  # type: ignore[index]
            del self._lanes[lane_key]
            timer = self._timers.pop(lane_key, None)
            if timer is not None:
                timer.cancel()

    async def wait_idle(self, partitions: Iterable[Any] | None, timeout: float) -> bool:
        """Wait until no handler of `partitions` (any, when None) runs; False at the timeout."""
        wanted = None if partitions is None else set(partitions)

        def busy() -> bool:
            return any(count for p, count in self._running.items() if wanted is None or p in wanted)

        try:
            async with asyncio.timeout(timeout):
                while busy():
                    self._idle.clear()
                    await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Cancel the workers (a handler still running is cut off and stays uncommitted)."""
        self.drop()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    def _wake(self, lane_key: Hashable, lane: deque[Job]) -> None:
        self._timers.pop(lane_key, None)
        if self._lanes.get(lane_key) is lane:
            self._ready.put_nowait((lane_key, lane))

    async def _work(self) -> None:
        ready, lanes, running, run = self._ready, self._lanes, self._running, self._run
        while True:
            # A queued entry names the lane object: a lane dropped (partition revoked) and
            # made again for the same key is a new object, so a stale entry never runs it twice.
            lane_key, lane = await ready.get()
            if lanes.get(lane_key) is not lane or not lane:
                continue
            partition = lane[0].partition
            running[partition] = running.get(partition, 0) + 1
            delay: float | None = None
            try:
                # Up to TURN messages of the lane per turn: fewer queue operations when one
                # key has a backlog, and other lanes still get a worker between turns.
                for _ in range(TURN):
                    job = lane[0]
                    try:
                        delay = await run(job)
                    except Exception:  # a runner settles every outcome; this is a bug, not a message
                        logger.exception("handling offset %d of %s failed; retrying in 1 s", job.offset, partition)
                        delay = 1.0
                    if delay is not None or lanes.get(lane_key) is not lane:
                        break
                    lane.popleft()
                    if not lane:
                        break
            finally:
                running[partition] -= 1
                if not running[partition]:
                    del running[partition]
                    self._idle.set()
            if lanes.get(lane_key) is not lane:
                continue  # the partition was revoked while the message ran
            if delay is not None:
                self._timers[lane_key] = asyncio.get_running_loop().call_later(delay, self._wake, lane_key, lane)
            elif lane:
                ready.put_nowait((lane_key, lane))
            else:
                del lanes[lane_key]
