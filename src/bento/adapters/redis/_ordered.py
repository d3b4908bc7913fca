"""OrderedSubscription: per-key order for a group, one owner per partition stream.

A topic is split into `partitions` streams by CRC32 of the key. Each partition of an
ordered group is owned by one member at a time through a lease key (SET NX PX,
renewed by the owner), and the owner handles that partition's entries one by one, so
messages sharing a key are handled in publish order. Members announce themselves in
a sorted set of deadlines; each takes up to ceil(partitions / live members) and hands
back extras, finishing its batch first, so partitions spread as members join.

A failed entry is retried in place after its back-off: later entries of the partition
wait (that is what per-key order means here). A new owner first takes over the
partition's pending entries (XAUTOCLAIM from 0-0, oldest first), with their Redis
delivery counts, before it reads new ones. An owner that stalls longer than the lease
loses the partition and stops on its next step; during that window two members may
briefly hold entries of one partition (documented in docs/redis.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable

from redis.exceptions import ResponseError

from bento.adapters.redis._durable import (
    DELIVERY_LIMIT_ERROR,
    DurableContext,
    Entry,
    Loop,
    autoclaimed,
    batches,
)
from bento.adapters.redis._errors import UNREACHABLE, RedisError
from bento.adapters.shared.delivery import Action, Verdict
from bento.application.ports.message_bus import MessageHandler

logger = logging.getLogger(__name__)

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class OrderedSubscription:
    """See the module docstring."""

    def __init__(
        self,
        ctx: DurableContext,
        topic: str,
        handler: MessageHandler,
        group: str,
        consumer: str,
        forget: Callable[[object], None],
    ) -> None:
        self._ctx, self._topic, self._handler = ctx, topic, handler
        self._group, self._consumer, self._forget = group, consumer, forget
        self._owned: dict[int, Loop] = {}
        self._coordinator = Loop()
        self._renew = ctx.redis.register_script(_RENEW)
        self._release = ctx.redis.register_script(_RELEASE)
        self._cancelled = False

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def group(self) -> str | None:
        return self._group

    async def start(self) -> None:
        for stream in self._ctx.keys.streams(self._topic):
            await self._ctx.create_group(stream, self._group, "$")
        await self._coordinate()
        self._coordinator.task = self._ctx.supervisor.spawn(
            f"partition leases of {self._topic!r}", self._coordinate_forever, stopping=self._coordinator.stopped
        )

    # -- partition ownership ----------------------------------------------------------
    async def _coordinate_forever(self) -> None:
        interval = self._ctx.settings.partition_lease_ms / 3000
        while not self._coordinator.stopping:
            with self._coordinator.waiting():
                await asyncio.sleep(interval)
            try:
                await self._coordinate()
            except (*UNREACHABLE, ResponseError) as exc:
                logger.warning("partition leases of %r/%r not renewed: %s", self._topic, self._group, exc)

    async def _coordinate(self) -> None:
        redis, keys, settings = self._ctx.redis, self._ctx.keys, self._ctx.settings
        lease_ms, partitions = settings.partition_lease_ms, settings.partitions
        seconds, micros = await redis.time()
        now_ms = seconds * 1000 + micros // 1000
        members = keys.members(self._topic, self._group)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.zadd(members, {self._consumer: now_ms + lease_ms})
            pipe.zremrangebyscore(members, "-inf", now_ms)
            pipe.zcard(members)
            pipe.pexpire(members, lease_ms * 10)
            live = int((await pipe.execute())[2])
        target = math.ceil(partitions / max(live, 1))
        for partition in list(self._owned):
            lease = keys.lease(self._topic, self._group, partition)
            if not await self._renew(keys=[lease], args=[self._consumer, lease_ms]):
                logger.warning("lost the lease of partition %d of %r/%r", partition, self._topic, self._group)
                await self._drop(partition, release=False)
        for partition in sorted(self._owned, reverse=True)[: max(len(self._owned) - target, 0)]:
            await self._drop(partition, release=True)
        for partition in range(partitions):
            if len(self._owned) >= target:
                break
            if partition in self._owned:
                continue
            lease = keys.lease(self._topic, self._group, partition)
            if await redis.set(lease, self._consumer, nx=True, px=lease_ms):
                worker = Loop()
                worker.task = self._ctx.supervisor.spawn(
                    f"partition {partition} of {self._topic!r}",
                    functools.partial(self._work, partition, worker),
                    stopping=worker.stopped,
                )
                self._owned[partition] = worker

    async def _drop(self, partition: int, *, release: bool) -> None:
        worker = self._owned.pop(partition)
        await worker.stop(self._ctx.settings.drain_timeout)
        if release:
            lease = self._ctx.keys.lease(self._topic, self._group, partition)
            await self._release(keys=[lease], args=[self._consumer])

    # -- one partition ----------------------------------------------------------------
    async def _work(self, partition: int, loop: Loop) -> None:
        redis, settings = self._ctx.redis, self._ctx.settings
        stream = self._ctx.keys.stream(self._topic, partition)
        taken_over, failures = False, 0
        while not loop.stopping:
            try:
                if not taken_over:
                    await self._take_over(stream, loop)
                    taken_over = True
                    continue
                with loop.waiting():
                    reply = await redis.xreadgroup(
                        self._group,
                        self._consumer,
                        {stream: ">"},
                        count=settings.batch_size,
                        block=settings.block_ms,
                    )
                failures = 0
                for _, batch in batches(reply):
                    await self._run_batch(stream, batch, None, loop)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise  # the supervisor logs it, marks the bus unhealthy and restarts this loop
                await self._ctx.create_group(stream, self._group, "0")
            except UNREACHABLE as exc:
                failures += 1
                logger.warning("Redis unreachable on partition %d of %r (%s)", partition, self._topic, exc)
                with loop.waiting():
                    await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    async def _take_over(self, stream: str, loop: Loop) -> None:
        """Handle what the previous owner left pending, oldest first, before anything new."""
        start: bytes | str = "0-0"
        while not loop.stopping:
            reply = await self._ctx.redis.xautoclaim(
                stream, self._group, self._consumer, 0, start, count=self._ctx.settings.batch_size
            )
            start, claimed = autoclaimed(reply)
            if claimed:
                attempts = await self._ctx.attempts_of(stream, self._group, [e[0] for e in claimed])
                await self._run_batch(stream, claimed, attempts, loop)
            if start in (b"0-0", "0-0"):
                return

    async def _run_batch(
        self, stream: str, entries: list[Entry], attempts: dict[bytes, int] | None, loop: Loop
    ) -> None:
        redis, policy = self._ctx.redis, self._ctx.policy
        done: list[bytes] = []
        for entry in entries:
            entry_id, fields = entry
            attempt = attempts.get(entry_id, 1) if attempts else 1
            while True:
                if attempt > policy.max_attempts:
                    verdict = Verdict(
                        Action.DEAD,
                        error_type=DELIVERY_LIMIT_ERROR,
                        error_message=f"delivered {attempt} times without an acknowledgement",
                    )
                else:
                    verdict = await self._ctx.deliver(
                        self._handler, fields, attempt, self._topic, entry_id, self._group
                    )
                if verdict.action is Action.ACK:
                    done.append(entry_id)
                elif verdict.action is Action.DEAD:
                    await self._ctx.dead_letter(
                        stream, self._group, (self._topic, self._group), entry, self._topic, attempt, verdict
                    )
                else:
                    # Retry in place: acknowledge what is done, wait, and count a delivery (XCLAIM).
                    if done:
                        await redis.xack(stream, self._group, *done)
                        done.clear()
                    with loop.waiting():
                        await asyncio.sleep(verdict.delay)
                    if not await redis.xclaim(stream, self._group, self._consumer, 0, [entry_id]):
                        break  # trimmed or taken: nothing left to retry
                    attempt += 1
                    continue
                break
        if done:
            await redis.xack(stream, self._group, *done)

    # -- stopping ---------------------------------------------------------------------
    async def cancel(self) -> None:
        """Stop every partition worker after its batch, release the leases, leave the group."""
        if self._cancelled:
            return
        self._cancelled = True
        self._forget(self)
        timeout = self._ctx.settings.drain_timeout
        await self._coordinator.stop(timeout)
        owned, self._owned = list(self._owned.items()), {}
        await asyncio.gather(*(worker.stop(timeout) for _, worker in owned))
        try:
            for partition, _ in owned:
                lease = self._ctx.keys.lease(self._topic, self._group, partition)
                await self._release(keys=[lease], args=[self._consumer])
            await self._ctx.redis.zrem(self._ctx.keys.members(self._topic, self._group), self._consumer)
        except RedisError as exc:
            logger.warning("could not release partitions of %r/%r: %s", self._topic, self._group, exc)
