"""Per-key parallelism inside one consumer: a lane per (partition, key), served by a few workers.

Kafka orders a partition, but most handlers only need order per key (per aggregate), and
a slow handler on one key should not hold every other key of its partition back. Each
fetched batch is handed over whole: its records join the lanes of their partition and key;
`workers` tasks take a lane that is ready, run its head records, and put the lane back at
the end of the queue, so different keys run concurrently (at most `workers` at once) while
one key never runs two records at once and keeps its order. A record that must be retried
keeps its lane (and so its key's later records) waiting for the back-off on a timer, not on
a worker: the other keys of the partition keep flowing. Records without a key each get a lane.

A lane holds the records themselves (aiokafka's, or anything with the same fields); what
is known of its head's handling so far (attempts, a dead-letter verdict) lives on the lane,
since only the head of a lane is ever handled. Nothing is allocated per record on the way
to the handler: this runs for every message a consumer receives.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, Protocol

from bento.adapters.kafka._offsets import PartitionOffsets
from bento.adapters.shared.delivery import Verdict

logger = logging.getLogger(__name__)

#: Records of one lane a worker handles before it puts the lane back in the queue.
TURN = 32
#: Seconds the workers together may run before the event loop gets a turn. A handler that
#: does no I/O never suspends, and a worker finding the next lane ready does not either:
#: without this the workers would handle a whole fetched batch (thousands of records) before
#: the loop read the fetch response it is waiting for or sent the next fetch, so fetching
#: would wait for handling instead of overlapping with it.
SLICE = 0.005


class Record(Protocol):
    """The fields of a received record the lanes and their runner read (aiokafka's ConsumerRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class Lane:
    """The waiting records of one key of one partition; the head is running, waiting to run
    or waiting for its retry. `attempt`, `dead` and `first_failed_at` describe the head."""

    __slots__ = ("attempt", "dead", "dropped", "first_failed_at", "key", "offsets", "partition", "records", "timer")

    def __init__(self, partition: Any, key: Hashable, offsets: PartitionOffsets) -> None:
        self.partition = partition  # aiokafka's TopicPartition (hashable)
        self.key = key
        self.offsets = offsets
        self.records: deque[Record] = deque()
        self.attempt = 1
        self.dead: Verdict | None = None
        #: When the head's first attempt failed (ISO 8601), carried to its dead letter.
        self.first_failed_at: str | None = None
        self.dropped = False  # its partition was revoked: never run it again
        self.timer: asyncio.TimerHandle | None = None


#: Runs the head record of a lane: None when it is settled, else the seconds to wait before
#: running it again (the runner updates `lane.attempt` / `lane.dead`).
Runner = Callable[[Lane, Record], Awaitable[float | None]]


class Lanes:
    """The lanes of one subscriber and the workers that serve them."""

    def __init__(self, workers: int, run: Runner, *, name: str) -> None:
        self._run = run
        self._partitions: dict[Any, dict[Hashable, Lane]] = {}
        self._ready: asyncio.Queue[Lane] = asyncio.Queue()
        self._running: dict[Any, int] = {}
        self._loop = asyncio.get_running_loop()
        self._slice_ends = 0.0
        self._slice_pending = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers = [asyncio.create_task(self._work(), name=f"{name}:worker{n}") for n in range(workers)]

    def submit(self, partition: Any, offsets: PartitionOffsets, records: Sequence[Record]) -> None:
        """Hand over one fetched batch of `partition` (records in offset order); `offsets`
        learns of every record before any of them can settle."""
        offsets.received_all([record.offset for record in records])
        lanes = self._partitions.get(partition)
        if lanes is None:
            lanes = self._partitions[partition] = {}
        ready = self._ready
        for record in records:
            key: Hashable = record.key
            if key is None:
                key = record.offset  # an int never equals a bytes key
            lane = lanes.get(key)
            if lane is None:
                lane = lanes[key] = Lane(partition, key, offsets)
                lane.records.append(record)
                ready.put_nowait(lane)
            else:
                lane.records.append(record)  # the lane is queued, running or waiting for a retry already

    def drop(self, partitions: Iterable[Any] | None = None) -> None:
        """Forget the records of `partitions` (all when None) that are not running: they
        were not committed, so whoever reads the partition next gets them again."""
        for partition in list(self._partitions if partitions is None else partitions):
            for lane in self._partitions.pop(partition, {}).values():
                lane.dropped = True
                if lane.timer is not None:
                    lane.timer.cancel()
                    lane.timer = None

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

    async def _give_the_loop_a_turn(self) -> None:
        """Suspend until the loop has polled for I/O. Every worker that finds the slice over
        suspends too, before its next lane turn, so the workers together run about one slice
        per loop iteration; the next slice starts in the loop's next iteration."""
        if not self._slice_pending:
            self._slice_pending = True
            self._loop.call_soon(self._next_slice)
        await asyncio.sleep(0)

    def _next_slice(self) -> None:
        self._slice_pending = False
        self._slice_ends = self._loop.time() + SLICE

    def _wake(self, lane: Lane) -> None:
        lane.timer = None
        if not lane.dropped:
            self._ready.put_nowait(lane)

    async def _work(self) -> None:
        ready, running, run, clock = self._ready, self._running, self._run, self._loop.time
        while True:
            # A lane dropped (partition revoked) and made again for the same key is a new
            # object, so a stale queue entry never runs a record twice.
            lane = await ready.get()
            # Checked again after the loop's turn: other workers may have used up the new slice.
            while clock() >= self._slice_ends:
                await self._give_the_loop_a_turn()
            records = lane.records  # and the lane may have been dropped meanwhile
            if lane.dropped or not records:
                continue
            partition = lane.partition
            running[partition] = running.get(partition, 0) + 1
            delay: float | None = None
            try:
                # Up to TURN records of the lane per turn: fewer queue operations when one
                # key has a backlog, and other lanes still get a worker between turns.
                for _ in range(TURN):
                    record = records[0]
                    try:
                        delay = await run(lane, record)
                    except Exception:  # a runner settles every outcome; this is a bug, not a message
                        logger.exception("handling offset %d of %s failed; retrying in 1 s", record.offset, partition)
                        delay = 1.0
                    if delay is not None or lane.dropped:
                        break
                    records.popleft()
                    if lane.attempt != 1 or lane.dead is not None:
                        lane.attempt, lane.dead, lane.first_failed_at = 1, None, None
                    if not records:
                        break
            finally:
                running[partition] -= 1
                if not running[partition]:
                    del running[partition]
                    self._idle.set()
            if lane.dropped:
                continue  # the partition was revoked while the record ran
            if delay is not None:
                lane.timer = asyncio.get_running_loop().call_later(delay, self._wake, lane)
            elif records:
                ready.put_nowait(lane)
            else:
                del self._partitions[partition][lane.key]
