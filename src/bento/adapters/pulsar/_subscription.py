"""One subscriber: a Pulsar consumer, its receiver thread and its handler workers.

`consumer.receive()` blocks, so each subscriber owns a daemon thread that receives
and hands whole batches to the event loop through the LoopBridge (one
`call_soon_threadsafe` per burst). When messages are already queued in the client
(a `receive` that returned at once), the thread takes the rest with one
`batch_receive()`: one GIL hand-over per burst instead of one per message, which was
the main cost under load. When messages trickle in, each one is handed over as soon
as it arrives, so latency does not wait for a batch. The thread stops receiving
while less than a whole batch fits under `receiver_queue_size` outstanding messages
(received, not yet settled), and resumes when one does; this bounds memory and
lets the broker hand the backlog to other group members.

The thread and the loop use pulsar-client's native consumer (`_pulsar.Consumer`, what
`pulsar.Consumer` wraps): its messages need no Python wrapper object each. Nacks are
made on the loop; acks are gathered per turn of the loop and made on the ClientCalls
thread (see `_ack`).

On the loop, `concurrency` workers run handlers through `handle_delivery`, so every
adapter classifies failures alike (see `_lanes` for how they share the loop).
Unordered subscriptions retry by negative ack: the message waits
`delay - nack delay` on a timer, then Pulsar redelivers it after the consumer's nack
delay (possibly to another member), and `redelivery_count() + 1` is the attempt
number. Ordered subscriptions (Key_Shared, Failover, Exclusive) route each key to one
worker and retry in place, because a nacked message would come back behind its
successors. After `max_attempts`, or at once for an undecodable body, the message is
published to the dead-letter topic with the error in its properties, and only then
acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pulsar

from bento.adapters.pulsar._client import burst_size
from bento.adapters.pulsar._lanes import Lane, TimeSlice
from bento.adapters.pulsar._runtime import Runtime
from bento.adapters.shared.delivery import KEY_HEADER, Action, FirstFailures, Verdict, handle_delivery
from bento.application.ports.message_bus import MessageHandler
from bento.application.wire import TransportFacts
from bento.domain.errors import BentoError

logger = logging.getLogger(__name__)

_RECEIVE_TIMEOUT_MS = 100  # how quickly a receiver thread notices cancel()
_QUEUED_SECONDS = 0.0002  # a receive() this quick found messages already queued: take a batch
_ACK = Action.ACK


class PulsarSubscription:
    """A live subscription (the port's `Subscription`); `cancel` drains and closes it."""

    def __init__(
        self,
        runtime: Runtime,
        consumer: pulsar.Consumer,
        *,
        topic: str,
        group: str | None,
        handler: MessageHandler,
        ordered: bool,
        broadcast: bool,
        on_cancel: Callable[[PulsarSubscription], None],
    ) -> None:
        self._rt, self._consumer, self._handler, self._on_cancel = runtime, consumer, handler, on_cancel
        # pulsar.Consumer keeps the native consumer in `_consumer` (its own asyncio module uses it too).
        self._native: Any = consumer._consumer
        self._topic, self._group, self._ordered, self._broadcast = topic, group, ordered, broadcast
        settings = runtime.settings
        self._nack_delay = nack_delay_seconds(runtime)
        self._dead_letter_topic = settings.dead_letter_topic_for(topic, group)
        self._first_failures = FirstFailures()
        count = settings.concurrency
        self._lanes = [Lane() for _ in range(count if ordered else 1)]
        self._slice = TimeSlice(asyncio.get_running_loop())
        self._workers = [
            runtime.supervisor.spawn(
                f"worker {i} of {topic!r}",
                functools.partial(self._work, self._lanes[i % len(self._lanes)]),
                stopping=self._is_cancelled,
            )
            for i in range(count)
        ]
        self._timers: set[asyncio.TimerHandle] = set()
        self._acks: list[Any] = []
        self._running = 0
        self._drained: asyncio.Future[None] | None = None
        self._cancelled = False
        # Flow control without a lock: only the receiver thread writes `_received`, only
        # the loop writes `_settled_count`; their difference is what is outstanding.
        self._received = 0
        self._settled_count = 0
        self._limit = settings.receiver_queue_size
        self._burst = burst_size(self._limit)
        # A quick receive() is followed by a batch_receive() of up to a burst, so taking a
        # batch needs `burst + 1` of room. The receiver pauses as soon as less is left,
        # rather than taking single messages until the limit (which, after each pause,
        # cost one receive() and one GIL hand-over per message for a whole burst), and
        # resumes when a whole batch fits again. Tiny queues just go one by one.
        batch_room = self._burst + 1
        self._pause_room = batch_room if self._limit >= 2 * batch_room else 1
        self._resume_below = self._limit - self._pause_room
        self._space = threading.Event()
        self._receiver_waiting = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._receive_loop, name=f"bento-pulsar-{consumer.subscription_name()}", daemon=True
        )
        self._thread.start()

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def group(self) -> str | None:
        return self._group

    @property
    def consumer(self) -> pulsar.Consumer:
        return self._consumer

    def _is_cancelled(self) -> bool:
        return self._cancelled

    # -- receiver thread ------------------------------------------------------------------
    def _receive_loop(self) -> None:
        native, submit, accept = self._native, self._rt.bridge.submit, self._accept
        limit, burst, pause_room, clock = self._limit, self._burst, self._pause_room, time.perf_counter
        closed = False
        while not closed and not self._stop.is_set():
            room = limit - (self._received - self._settled_count)
            if room < pause_room:
                self._wait_for_room()
                continue
            batch: list[Any] = []
            try:
                started = clock()
                batch.append(native.receive(_RECEIVE_TIMEOUT_MS))
                if room > burst and clock() - started < _QUEUED_SECONDS:
                    batch.extend(native.batch_receive())
            except pulsar.Timeout:
                pass  # nothing (more) queued
            except pulsar.AlreadyClosed:
                closed = True  # closed under us: Pulsar redelivers whatever was not acked
            except pulsar.PulsarException as exc:
                submit(self._receive_failed, exc)
                self._stop.wait(0.5)
            if batch:
                self._received += len(batch)
                submit(accept, batch)

    def _wait_for_room(self) -> None:
        self._space.clear()
        self._receiver_waiting = True
        while self._received - self._settled_count > self._resume_below and not self._stop.is_set():
            self._space.wait(0.1)
            self._space.clear()
        self._receiver_waiting = False

    def _settled(self, count: int = 1) -> None:
        self._settled_count += count
        if self._receiver_waiting and self._received - self._settled_count <= self._resume_below:
            self._space.set()

    def _receive_failed(self, exc: Exception) -> None:
        self._rt.metrics.connection_errors += 1
        logger.warning("receiving from %r (group %r) failed, retrying: %r", self._topic, self._group, exc)

    # -- event loop -----------------------------------------------------------------------
    def _accept(self, batch: list[Any]) -> None:
        if self._cancelled:
            self._settled(len(batch))  # left unacked: Pulsar redelivers them once this consumer closes
            return
        lanes = self._lanes
        if len(lanes) == 1:
            lanes[0].extend(batch)
            return
        routed: dict[int, list[Any]] = {}
        for message in batch:
            index = zlib.crc32(message.partition_key().encode()) % len(lanes)
            routed.setdefault(index, []).append(message)
        for index, messages in routed.items():
            lanes[index].extend(messages)

    async def _work(self, lane: Lane) -> None:
        # The per-message path is inlined here (no `_process` coroutine per message):
        # it runs for every message, and each coroutine frame and attribute lookup counts.
        rt = self._rt
        messages, spent, wake_one = lane.messages, self._slice.spent, lane.wake_one
        codec, handler, policy, metrics = rt.codec, self._handler, rt.policy, rt.metrics
        timeout, topic, max_bytes = rt.settings.handler_timeout, self._topic, rt.settings.max_message_bytes
        acks, flush_acks, call_soon = self._acks, self._flush_acks, asyncio.get_running_loop().call_soon
        while True:
            if not messages:
                await lane.wait()
                continue
            if spent():
                # Give the loop a turn (see `_lanes.TimeSlice`); one worker per lane comes
                # back next turn, the others park until a worker or a batch wakes them.
                if lane.resuming:
                    await lane.wait()
                    continue
                lane.resuming = True
                try:
                    await asyncio.sleep(0)
                finally:
                    lane.resuming = False
                continue
            message = messages.popleft()
            if self._cancelled:
                self._settled()  # not started: left unacked for redelivery, like in _accept
                continue
            if messages:
                wake_one()  # carries on with the lane if this handler suspends
            self._running += 1
            try:
                attempt = message.redelivery_count() + 1
                verdict = await handle_delivery(
                    codec,
                    handler,
                    message.data(),
                    attempt=attempt,
                    policy=policy,
                    timeout=timeout,
                    topic=topic,
                    max_bytes=max_bytes,
                    system="pulsar",
                    group=self._group,
                    headers=message.properties(),
                    transport=functools.partial(transport_facts, message),
                    failures=self._first_failures,
                )
                if verdict.action is _ACK:
                    acks.append(message)  # `_ack`, inlined
                    if len(acks) == 1:
                        call_soon(flush_acks)
                    metrics.messages_consumed += 1
                else:
                    await self._failed(message, verdict, attempt)
            except Exception as exc:  # a bug of ours: report it, redeliver the message, keep the worker
                rt.supervisor.failed(f"worker of {topic!r}", exc)
                self._nack(message)
            finally:
                self._running -= 1
                if self._running == 0 and self._drained is not None and not self._drained.done():
                    self._drained.set_result(None)
                self._settled_count += 1  # `_settled`, inlined
                if self._receiver_waiting and self._received - self._settled_count <= self._resume_below:
                    self._space.set()

    async def _failed(self, message: Any, verdict: Verdict, attempt: int) -> None:
        """A delivery that was not acked: dead-letter it, nack it for later, or (ordered) retry in place."""
        rt = self._rt
        body = message.data()
        while True:
            rt.metrics.consume_errors += 1
            if verdict.action is Action.DEAD:
                await self._dead_letter(message, body, verdict, attempt)
                return
            rt.metrics.retries += 1
            if not self._ordered:
                self._nack_later(message, verdict.delay)
                return
            await asyncio.sleep(verdict.delay)
            attempt += 1
            verdict = await handle_delivery(
                rt.codec,
                self._handler,
                body,
                attempt=attempt,
                policy=rt.policy,
                timeout=rt.settings.handler_timeout,
                topic=self._topic,
                max_bytes=rt.settings.max_message_bytes,
                system="pulsar",
                group=self._group,
                headers=message.properties(),
                transport=functools.partial(transport_facts, message),
                failures=self._first_failures,
            )
            if verdict.action is _ACK:
                self._ack(message)
                rt.metrics.messages_consumed += 1
                return

    # Acks are gathered for one turn of the loop and made on the ClientCalls thread as
    # one list. The synchronous `acknowledge` waits with the GIL released, and taking it
    # back cost ~9 us per message on the loop under load (`acknowledge_async` ~12 us);
    # on the thread that wait overlaps with the loop's handler work.
    # `_work` appends to `_acks` directly, so the list keeps its identity.
    def _ack(self, message: Any) -> None:
        self._acks.append(message)
        if len(self._acks) == 1:
            asyncio.get_running_loop().call_soon(self._flush_acks)

    def _flush_acks(self) -> None:
        if self._acks:
            acks = self._acks.copy()
            self._acks.clear()
            self._rt.calls.submit(self._ack_all, acks)

    def _ack_all(self, messages: list[Any]) -> None:
        """On the ClientCalls thread."""
        acknowledge = self._native.acknowledge
        for message in messages:
            try:
                acknowledge(message)
            except pulsar.PulsarException as exc:
                self._rt.bridge.submit(self._ack_failed, exc)

    def _ack_failed(self, error: object) -> None:
        self._rt.metrics.connection_errors += 1
        logger.warning("ack on %r failed; Pulsar will redeliver the message: %r", self._topic, error)

    def _nack(self, message: Any) -> None:
        self._settle_now(self._native.negative_acknowledge, message)

    def _settle_now(self, settle: Callable[[Any], None], message: Any) -> None:
        try:
            settle(message)
        except pulsar.PulsarException as exc:
            self._rt.metrics.connection_errors += 1
            logger.warning("(negative) ack on %r failed; Pulsar will redeliver the message: %r", self._topic, exc)

    def _nack_later(self, message: Any, delay: float) -> None:
        wait = delay - self._nack_delay
        if wait <= 0.001:
            self._nack(message)
            return

        def fire() -> None:
            self._timers.discard(handle)
            if not self._cancelled:
                self._nack(message)

        handle = asyncio.get_running_loop().call_later(wait, fire)
        self._timers.add(handle)

    async def _dead_letter(self, message: Any, body: bytes, verdict: Verdict, attempt: int) -> None:
        headers = {**message.properties(), **verdict.dead_letter_headers(attempt, self._topic)}
        key = message.partition_key() or None
        if key:
            headers[KEY_HEADER] = key
        try:
            await self._rt.producers.send(self._dead_letter_topic, [(body, key, headers)])
        except BentoError as exc:
            logger.error(
                "could not dead-letter a message of %r to %r, will retry it: %s",
                self._topic,
                self._dead_letter_topic,
                exc,
            )
            self._nack(message)
            return
        self._ack(message)
        self._rt.metrics.dead_lettered += 1

    # -- shutdown -------------------------------------------------------------------------
    async def cancel(self) -> None:
        """Stop receiving, let running handlers finish (up to `drain_timeout`), close the consumer.

        Messages received but not handled stay unacknowledged, so Pulsar gives them to
        another member (or to this group again after a restart): nothing is lost."""
        if self._cancelled:
            return
        self._cancelled = True
        self._on_cancel(self)
        self._stop.set()
        await asyncio.to_thread(self._thread.join)
        if self._running:
            self._drained = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._rt.settings.drain_timeout):
                    await asyncio.shield(self._drained)
        if self._running:
            logger.warning(
                "%d handler(s) on %r still running after drain_timeout; cancelling them",
                self._running,
                self._topic,
            )
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._flush_acks()
        await self._rt.calls.barrier()  # acks queued for this consumer are made first
        await asyncio.to_thread(self._close_consumer)

    def _close_consumer(self) -> None:
        try:
            if self._broadcast:
                # A private subscription would keep a backlog forever: remove it.
                self._consumer.unsubscribe()
            self._consumer.close()
        except pulsar.AlreadyClosed:
            return
        except pulsar.PulsarException as exc:
            logger.warning("closing the consumer of %r (group %r) failed: %r", self._topic, self._group, exc)


def nack_delay_seconds(runtime: Runtime) -> float:
    """The consumer's fixed nack delay: the first retry delay (10 ms at least)."""
    return max(runtime.policy.delay_after(1), 0.01)


def transport_facts(message: Any) -> TransportFacts:
    """A Pulsar message's id and publish time: the same on every redelivery."""
    stamp = message.publish_timestamp()
    return TransportFacts(
        message_id=str(message.message_id()),
        timestamp=datetime.fromtimestamp(stamp / 1000, UTC) if stamp else None,
    )
