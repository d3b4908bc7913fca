"""StreamSubscription: one member of a consumer group on a topic's streams (unordered).

The reader fetches up to `batch_size` entries per XREADGROUP and acknowledges the
handled ones with one XACK per stream, sent in the same round trip as its next XREADGROUP
(one request instead of two per batch; `cancel` sends what is still unsent). A failed entry
stays pending (so a crash loses nothing) while a timer waits out its back-off; then the member
XCLAIMs it to itself, which bumps Redis's delivery counter, and runs it again. Other entries
keep flowing. A maintenance task refreshes the idle time of entries this member holds (XCLAIM
JUSTID, which does not count as a delivery) and sweeps the group with XAUTOCLAIM for
entries idle longer than `claim_idle_ms`: those belonged to a consumer that died.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import cast

from redis.exceptions import ResponseError
from redis.typing import KeyT, StreamIdT

from bento.adapters.redis._durable import (
    DELIVERY_LIMIT_ERROR,
    DurableContext,
    Entry,
    Loop,
    autoclaimed,
    batches,
    entries,
)
from bento.adapters.redis._errors import UNREACHABLE, RedisError
from bento.adapters.redis._keys import is_pattern
from bento.adapters.shared.delivery import Action, Verdict
from bento.application.ports.message_bus import MessageHandler

logger = logging.getLogger(__name__)


class StreamSubscription:
    """See the module docstring. `group_name` is the Redis group; `label` is what the
    user asked for (None for broadcast, whose throwaway group is destroyed on cancel)."""

    def __init__(
        self,
        ctx: DurableContext,
        topic: str,
        handler: MessageHandler,
        group_name: str,
        label: str | None,
        consumer: str,
        forget: Callable[[object], None],
    ) -> None:
        self._ctx, self._topic, self._handler = ctx, topic, handler
        self._group, self._label, self._consumer = group_name, label, consumer
        self._pattern = is_pattern(topic)
        self._streams: dict[str, str] = {}  # stream key -> topic
        self._held: dict[str, set[bytes]] = defaultdict(set)
        self._unacked: dict[str, list[bytes]] = {}  # handled, XACK goes with the next read
        self._retries: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._reader, self._maintenance = Loop(), Loop()
        self._next_discovery = 0.0
        self._gate = asyncio.Semaphore(ctx.settings.concurrency)
        self._cancelled = False
        self._forget = forget

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def group(self) -> str | None:
        return self._label

    async def start(self) -> None:
        if self._pattern:
            await self._discover(initial=True)
        else:
            for stream in self._ctx.keys.streams(self._topic):
                await self._ctx.create_group(stream, self._group, "$")
                self._streams[stream] = self._topic
        supervisor = self._ctx.supervisor
        self._reader.task = supervisor.spawn(
            f"reader of {self._topic!r}", self._read_forever, stopping=self._reader.stopped
        )
        self._maintenance.task = supervisor.spawn(
            f"reclaim of {self._topic!r}", self._maintain, stopping=self._maintenance.stopped
        )

    async def _discover(self, *, initial: bool = False) -> None:
        """Add the streams of registry topics that match the pattern. Topics present at
        subscribe time are read from now on (`$`); topics that appear later from their
        first entry (`0`), since all of it was published after the subscription."""
        self._next_discovery = time.monotonic() + self._ctx.settings.pattern_refresh
        members = cast(set[bytes], await self._ctx.redis.smembers(self._ctx.keys.topics))
        for raw in sorted(members):
            topic = raw.decode()
            if not fnmatch.fnmatchcase(topic, self._topic):
                continue
            for stream in self._ctx.keys.streams(topic):
                if stream not in self._streams:
                    await self._ctx.create_group(stream, self._group, "$" if initial else "0")
                    self._streams[stream] = topic

    # -- reading ----------------------------------------------------------------------
    async def _read_forever(self) -> None:
        settings, failures = self._ctx.settings, 0
        block = settings.block_ms
        if self._pattern:
            block = min(block, int(settings.pattern_refresh * 1000))
        while not self._reader.stopping:
            try:
                if self._pattern and time.monotonic() >= self._next_discovery:
                    await self._discover()
                if not self._streams:
                    with self._reader.waiting():
                        await asyncio.sleep(block / 1000)
                    continue
                with self._reader.waiting():
                    reply = await self._read(settings.batch_size, block)
                failures = 0
                for stream, batch in batches(reply):
                    await self._handle_batch(stream, batch, attempts=None, defer_ack=True)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise  # the supervisor logs it, marks the bus unhealthy and restarts this loop
                # The stream or group was deleted under us: set them up again.
                logger.warning("group %r vanished on %r; recreating it", self._group, self._topic)
                for stream in self._streams:
                    await self._ctx.create_group(stream, self._group, "0")
            except UNREACHABLE as exc:
                failures += 1
                logger.warning("Redis unreachable while reading %r (%s); retrying", self._topic, exc)
                with self._reader.waiting():
                    await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    async def _read(self, count: int, block: int) -> object:
        """XREADGROUP, after the XACK of the last batch in the same round trip."""
        streams: dict[KeyT, StreamIdT] = dict.fromkeys(self._streams, ">")
        if not self._unacked:
            return await self._ctx.redis.xreadgroup(self._group, self._consumer, streams, count=count, block=block)
        unacked = self._unacked
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            for stream, done in unacked.items():
                pipe.xack(stream, self._group, *done)
            pipe.xreadgroup(self._group, self._consumer, streams, count=count, block=block)
            replies = await pipe.execute()
        self._acknowledged(unacked)
        return replies[-1]

    def _acknowledged(self, unacked: dict[str, list[bytes]]) -> None:
        if unacked is self._unacked:
            self._unacked = {}
        for stream, done in unacked.items():
            self._held[stream].difference_update(done)

    async def _send_acks(self) -> None:
        """XACK what the reader handled but has not acknowledged yet (at cancel)."""
        unacked = self._unacked
        if not unacked:
            return
        async with self._ctx.redis.pipeline(transaction=False) as pipe:
            for stream, done in unacked.items():
                pipe.xack(stream, self._group, *done)
            await pipe.execute()
        self._acknowledged(unacked)

    async def _handle_batch(
        self, stream: str, entries: list[Entry], attempts: dict[bytes, int] | None, *, defer_ack: bool = False
    ) -> None:
        held = self._held[stream]
        held.update(entry_id for entry_id, _ in entries)
        if self._ctx.settings.concurrency == 1 or len(entries) == 1:  # no task per entry when none runs beside it
            outcomes = [await self._handle(stream, entry, attempts) for entry in entries]
        else:
            outcomes = list(await asyncio.gather(*(self._gated(stream, entry, attempts) for entry in entries)))
        done = [entry_id for entry_id, ack in outcomes if ack]
        if done and defer_ack:
            self._unacked.setdefault(stream, []).extend(done)
        elif done:
            await self._ctx.redis.xack(stream, self._group, *done)
            held.difference_update(done)

    async def _gated(self, stream: str, entry: Entry, attempts: dict[bytes, int] | None) -> tuple[bytes, bool]:
        async with self._gate:
            return await self._handle(stream, entry, attempts)

    async def _handle(
        self, stream: str, entry: Entry, attempts: dict[bytes, int] | None, attempt: int | None = None
    ) -> tuple[bytes, bool]:
        """Run one entry; True means 'XACK it with the batch'."""
        entry_id, fields = entry
        topic = self._streams.get(stream, self._topic)
        if attempt is None:
            attempt = attempts.get(entry_id, 1) if attempts is not None else 1
        if attempt > self._ctx.policy.max_attempts:
            # Consumers kept dying (or hanging) on this entry: do not run it yet again.
            verdict = Verdict(
                Action.DEAD,
                error_type=DELIVERY_LIMIT_ERROR,
                error_message=f"delivered {attempt} times without an acknowledgement",
            )
        else:
            verdict = await self._ctx.deliver(self._handler, fields, attempt, topic, entry_id, self._label)
        if verdict.action is Action.ACK:
            return entry_id, True
        if verdict.action is Action.DEAD:
            await self._ctx.dead_letter(stream, self._group, (self._topic, self._label), entry, topic, attempt, verdict)
            self._held[stream].discard(entry_id)
            return entry_id, False
        if not self._cancelled:
            loop = asyncio.get_running_loop()
            timer = loop.call_later(verdict.delay, self._spawn_retry, stream, entry_id, attempt + 1)
            self._timers.add(timer)
        return entry_id, False

    def _spawn_retry(self, stream: str, entry_id: bytes, attempt: int) -> None:
        self._timers = {t for t in self._timers if not t.cancelled() and t.when() > time.monotonic()}
        if self._cancelled:
            return
        task = asyncio.create_task(self._retry(stream, entry_id, attempt))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _retry(self, stream: str, entry_id: bytes, attempt: int) -> None:
        try:
            # XCLAIM (not JUSTID) counts a delivery and hands the entry back; nothing if it is gone.
            claimed = entries(await self._ctx.redis.xclaim(stream, self._group, self._consumer, 0, [entry_id]))
            if not claimed:
                self._held[stream].discard(entry_id)
                return
            _, ack = await self._handle(stream, claimed[0], None, attempt)
            if ack:
                await self._ctx.redis.xack(stream, self._group, entry_id)
                self._held[stream].discard(entry_id)
        except RedisError as exc:
            # The entry stays pending; the reclaim sweep (ours or another member's) brings it back.
            logger.warning("retry of %r on %r failed (%s); it stays pending", entry_id, self._topic, exc)
        except Exception as exc:  # a bug of ours: visible in health_check; the entry stays pending
            self._ctx.supervisor.failed(f"retry on {self._topic!r}", exc)

    # -- keeping held entries, reclaiming dead consumers' ones --------------------------
    async def _maintain(self) -> None:
        settings = self._ctx.settings
        heartbeat = settings.claim_idle_ms / 3000
        next_sweep = time.monotonic() + min(settings.claim_interval, settings.claim_idle_ms / 1000)
        while not self._maintenance.stopping:
            with self._maintenance.waiting():
                await asyncio.sleep(min(heartbeat, settings.claim_interval))
            try:
                await self._refresh_held()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + settings.claim_interval
                    for stream in list(self._streams):
                        await self._reclaim(stream)
            except UNREACHABLE as exc:
                logger.warning("Redis unreachable during reclaim on %r (%s)", self._topic, exc)
            except ResponseError as exc:
                logger.warning("reclaim on %r refused: %s", self._topic, exc)

    async def _refresh_held(self) -> None:
        for stream, ids in list(self._held.items()):
            if ids:
                await self._ctx.redis.xclaim(stream, self._group, self._consumer, 0, list(ids), justid=True)

    async def _reclaim(self, stream: str) -> None:
        start: bytes | str = "0-0"
        for _ in range(100):  # bounded: one sweep never monopolises the loop
            reply = await self._ctx.redis.xautoclaim(
                stream,
                self._group,
                self._consumer,
                self._ctx.settings.claim_idle_ms,
                start,
                count=self._ctx.settings.batch_size,
            )
            start, claimed = autoclaimed(reply)
            if claimed:
                logger.info("reclaimed %d idle entries of %r for group %r", len(claimed), stream, self._group)
                attempts = await self._ctx.attempts_of(stream, self._group, [e[0] for e in claimed])
                await self._handle_batch(stream, claimed, attempts)
            if start in (b"0-0", "0-0") or self._maintenance.stopping:
                return

    # -- stopping ---------------------------------------------------------------------
    async def cancel(self) -> None:
        """Stop reading, finish the batch in hand (up to `drain_timeout`), and tidy the group:
        a throwaway broadcast group is destroyed, a shared group loses this consumer name."""
        if self._cancelled:
            return
        self._cancelled = True
        self._forget(self)
        for timer in self._timers:
            timer.cancel()
        timeout = self._ctx.settings.drain_timeout
        await asyncio.gather(self._reader.stop(timeout), self._maintenance.stop(timeout))
        try:
            await self._send_acks()
        except RedisError as exc:  # they stay pending: reclaimed and handled again (at-least-once)
            logger.warning("could not acknowledge handled entries of %r: %s", self._topic, exc)
        for task in list(self._retries):
            task.cancel()
        await asyncio.gather(*self._retries, return_exceptions=True)
        try:
            await self._tidy()
        except RedisError as exc:
            logger.warning("could not tidy group %r on %r: %s", self._group, self._topic, exc)

    async def _tidy(self) -> None:
        redis = self._ctx.redis
        for stream in self._streams:
            if self._label is None:
                await redis.xgroup_destroy(stream, self._group)
                continue
            mine = await redis.xpending_range(stream, self._group, "-", "+", 1, consumername=self._consumer)
            if not mine:  # pending entries stay with the name until another member reclaims them
                await redis.xgroup_delconsumer(stream, self._group, self._consumer)
