"""InProcessMessageBus: the MessageBus port inside one event loop.

Messages are encoded on publish and decoded per delivery, exactly as a broker
would, so code that passes here does not break on serialization later. A group is
scoped to the topic pattern it subscribed with (like a broker queue bound to it);
members of one group compete for its messages, each group gets every message.
Topic patterns use fnmatch (`*`, `?`, `[seq]`), as seed 000's psubscribe. Nothing is
persistent: messages not yet handled are lost with the process, and `close()` waits only
for handlers already running (up to `drain_timeout`), dropping what is still queued.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bento.adapters.memory.settings import InProcessSettings
from bento.adapters.shared.dead_letters import letter, replay_copy, requeue_each
from bento.adapters.shared.delivery import FIRST_FAILED_AT_HEADER, KEY_HEADER, Action, handle_delivery, typed_handler
from bento.adapters.shared.lifecycle import StartsAndCloses
from bento.adapters.shared.limits import all_within_limit, within_limit
from bento.adapters.shared.reconnect import ObservedBus, ReconnectCallbacks
from bento.adapters.shared.supervision import Supervisor
from bento.adapters.shared.wire_headers import INPROCESS, WireEncoder
from bento.application.bus_metrics import BusCounters
from bento.application.errors import BusClosedError, SubscribeError
from bento.application.ports.backlog import Backlog
from bento.application.ports.capabilities import Capabilities, HealthStatus
from bento.application.ports.message_bus import DeadLetter, DeadLetterSelection, MessageHandler
from bento.application.serialization import JsonCodec
from bento.application.wire import TransportFacts
from bento.domain.events import DomainEvent
from bento.domain.metadata import utc_now

logger = logging.getLogger(__name__)

_CAPABILITIES = Capabilities(
    ordered_per_key=True,
    persistent=False,
    redelivery=True,
    dead_letter=True,
    pattern_subscriptions=True,
    consumer_groups=True,
    broadcast=True,
    mechanism="asyncio queues; ordered groups route each key to one member by CRC32",
)
_WILDCARDS = frozenset("*?[")


@dataclass(slots=True)
class _Delivery:
    topic: str
    body: bytes
    key: str | None
    headers: dict[str, str]
    attempt: int = 1
    #: When it was published: the transport timestamp a plain foreign payload keeps on retries.
    published_at: datetime = field(default_factory=utc_now)

    def facts(self) -> TransportFacts:
        return TransportFacts(timestamp=self.published_at)


@dataclass(eq=False)
class _Member:
    handler: MessageHandler
    queue: asyncio.Queue[_Delivery]
    workers: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass(eq=False)
class _Group:
    pattern: str
    name: str | None
    ordered: bool
    is_pattern: bool
    members: list[_Member] = field(default_factory=list)
    shared: asyncio.Queue[_Delivery] | None = None

    def matches(self, topic: str) -> bool:
        return fnmatch.fnmatchcase(topic, self.pattern) if self.is_pattern else topic == self.pattern

    def queue_for(self, delivery: _Delivery) -> asyncio.Queue[_Delivery]:
        if self.ordered:
            index = zlib.crc32((delivery.key or "").encode()) % len(self.members)
            return self.members[index].queue
        assert self.shared is not None
        return self.shared


class _InProcessSubscription:
    def __init__(self, bus: InProcessMessageBus, group: _Group, member: _Member) -> None:
        self._bus, self._group, self._member = bus, group, member

    @property
    def topic(self) -> str:
        return self._group.pattern

    @property
    def group(self) -> str | None:
        return self._group.name

    async def cancel(self) -> None:
        await self._bus._remove(self._group, self._member)


class InProcessMessageBus(ObservedBus, StartsAndCloses):
    """MessageBus inside one process; see the module docstring for the semantics.

    It keeps seed 003's counters like every bus; having no broker, it never loses a
    connection, so its connection callbacks are accepted and never called."""

    def __init__(self, settings: InProcessSettings | None = None, *, codec: JsonCodec | None = None) -> None:
        self.settings = settings or InProcessSettings()
        self.codec = codec or JsonCodec()
        self._wire = WireEncoder(self.codec, self.settings, INPROCESS, "inprocess")
        self._policy = self.settings.retry_policy()
        self._groups: dict[tuple[str, str], _Group] = {}
        self._dead: dict[tuple[str, str | None], list[DeadLetter]] = {}
        self._anonymous = itertools.count()
        self._letter_ids = itertools.count(1)
        self._timers: set[asyncio.TimerHandle] = set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._dropped = 0
        self._counters = BusCounters()
        self._reconnect_callbacks = ReconnectCallbacks(self._counters)
        self.supervisor = Supervisor("in-process bus", self._counters)

    @property
    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    async def start(self) -> None:
        if self._closed:
            raise BusClosedError("this InProcessMessageBus was closed; build a new one")

    # -- publishing ---------------------------------------------------------------------
    async def publish(
        self,
        topic: str,
        message: DomainEvent,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body, wire_headers = self._wire.encode(message, headers, topic=topic)
        within_limit(body, self.settings.max_message_bytes, topic, self._counters)
        await self.publish_raw(topic, body, key=key or message.metadata.aggregate_id, headers=wire_headers)

    async def publish_batch(self, topic: str, messages: Sequence[DomainEvent]) -> None:
        """Encodes and checks the whole batch first: an unencodable or oversized message fails
        it with nothing delivered."""
        encoded = [self._wire.encode(m, topic=topic) for m in messages]
        all_within_limit([body for body, _ in encoded], self.settings.max_message_bytes, topic, self._counters)
        for message, (body, headers) in zip(messages, encoded, strict=True):
            await self.publish_raw(topic, body, key=message.metadata.aggregate_id, headers=headers)

    async def publish_raw(
        self, topic: str, body: bytes, *, key: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Delivers `body` as given (no size check: this is how a foreign producer's message
        is simulated); subscribers decode it, and dead-letter it when they cannot."""
        if self._closed:
            self._counters.publish_errors += 1
            raise BusClosedError(f"cannot publish to {topic!r}: the in-process bus is closed")
        for group in list(self._groups.values()):
            if group.members and group.matches(topic):
                delivery = _Delivery(topic, body, key, dict(headers or {}))
                await group.queue_for(delivery).put(delivery)
        self._counters.messages_published += 1

    # -- subscribing --------------------------------------------------------------------
    async def subscribe(
        self,
        topic: str,
        handler: MessageHandler,
        *,
        group: str | None = None,
        ordered: bool = False,
        message_type: type[DomainEvent] | None = None,
    ) -> _InProcessSubscription:
        handler = typed_handler(handler, message_type)
        if self._closed:
            raise BusClosedError(f"cannot subscribe to {topic!r}: the in-process bus is closed")
        name = group if group is not None else f"~broadcast-{next(self._anonymous)}"
        entry = self._groups.get((topic, name))
        if entry is None:
            entry = _Group(topic, group, ordered, is_pattern=bool(_WILDCARDS & set(topic)))
            if not ordered:
                entry.shared = asyncio.Queue(self.settings.queue_size)
            self._groups[(topic, name)] = entry
        elif entry.ordered != ordered:
            raise SubscribeError(topic, f"group {group!r} is already subscribed with ordered={entry.ordered}")
        queue = asyncio.Queue(self.settings.queue_size) if ordered else entry.shared
        assert queue is not None
        member = _Member(handler, queue)
        workers = 1 if ordered else self.settings.concurrency
        member.workers = [
            self.supervisor.spawn(f"worker of {topic!r}", lambda: self._work(entry, member), stopping=self._stopped)
            for _ in range(workers)
        ]
        entry.members.append(member)
        return _InProcessSubscription(self, entry, member)

    def _stopped(self) -> bool:
        return self._closed

    async def _work(self, group: _Group, member: _Member) -> None:
        while True:
            delivery = await member.queue.get()
            if self._closed:
                self._dropped += 1  # close() waits only for handlers already running
                continue
            self._in_flight += 1
            self._idle.clear()
            try:
                await self._deliver(group, member, delivery)
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

    async def _deliver(self, group: _Group, member: _Member, delivery: _Delivery) -> None:
        verdict = await handle_delivery(
            self.codec,
            member.handler,
            delivery.body,
            attempt=delivery.attempt,
            policy=self._policy,
            timeout=self.settings.handler_timeout,
            topic=delivery.topic,
            max_bytes=self.settings.max_message_bytes,
            system="inprocess",
            group=group.name if not (group.name or "").startswith("~") else None,
            headers=delivery.headers,
            transport=delivery.facts,
        )
        counters = self._counters
        if verdict.action is Action.ACK:
            counters.messages_consumed += 1
            return
        counters.consume_errors += 1
        if verdict.action is Action.RETRY:
            delivery.headers.setdefault(FIRST_FAILED_AT_HEADER, utc_now().isoformat())
            counters.retries += 1
            delivery.attempt += 1
            # Re-queue later without holding the worker: other messages keep flowing.
            queue = group.queue_for(delivery) if group.members else member.queue
            handle = asyncio.get_running_loop().call_later(verdict.delay, self._requeue, queue, delivery)
            self._timers.add(handle)
        elif verdict.action is Action.DEAD:
            counters.dead_lettered += 1
            headers = {**delivery.headers, **verdict.dead_letter_headers(delivery.attempt, delivery.topic)}
            if delivery.key:
                headers.setdefault(KEY_HEADER, delivery.key)
            dead = letter(delivery.topic, group.name, delivery.body, headers, str(next(self._letter_ids)))
            self._dead.setdefault((group.pattern, group.name), []).append(dead)

    def _requeue(self, queue: asyncio.Queue[_Delivery], delivery: _Delivery) -> None:
        self._timers = {t for t in self._timers if not t.cancelled() and t.when() > time.monotonic()}
        if self._closed:
            logger.warning("in-process bus closed before redelivering a message on %r", delivery.topic)
            return
        try:
            queue.put_nowait(delivery)
        except asyncio.QueueFull:
            asyncio.get_running_loop().create_task(queue.put(delivery))

    async def _remove(self, group: _Group, member: _Member) -> None:
        if member in group.members:
            group.members.remove(member)
        await _stop(member.workers)
        if not group.members:
            for key, value in list(self._groups.items()):
                if value is group:
                    del self._groups[key]

    async def dead_letters(self, topic: str, *, group: str | None, limit: int = 100) -> list[DeadLetter]:
        return list(self._dead.get((topic, group), []))[:limit]

    async def backlog(self, topic: str, *, group: str) -> Backlog:
        """BacklogProbe: the group's queued deliveries (None while nobody subscribes: nothing
        outlives its subscribers here) and its dead letters."""
        entry = self._groups.get((topic, group))
        queues = [] if entry is None else [m.queue for m in entry.members] if entry.ordered else [entry.shared]
        waiting = None if entry is None else sum(q.qsize() for q in queues if q is not None)
        dead = self._dead.get((topic, group))
        return Backlog(topic, group, waiting, len(dead) if dead is not None else 0 if entry is not None else None)

    async def requeue_dead_letters(
        self,
        topic: str,
        *,
        group: str | None,
        selection: DeadLetterSelection | None = None,
        rate: float | None = None,
    ) -> list[DeadLetter]:
        """Puts each letter straight into the queue of the live subscription (`topic`, `group`):
        nothing is persistent here, so there must be one (SubscribeError otherwise)."""
        if self._closed:
            raise BusClosedError(f"cannot requeue dead letters of {topic!r}: the in-process bus is closed")
        letters = self._dead.get((topic, group), [])

        async def send(dead: DeadLetter) -> None:
            targets = [g for g in self._groups.values() if g.pattern == topic and g.name == group and g.members]
            if not targets:
                raise SubscribeError(topic, f"no live subscription of group {group!r} to requeue dead letters to")
            copy = replay_copy(self._wire, dead, topic=dead.topic)
            for target in targets:
                delivery = _Delivery(dead.topic, copy.body, copy.key, dict(copy.headers))
                await target.queue_for(delivery).put(delivery)

        async def remove(dead: DeadLetter) -> None:
            letters.remove(dead)

        return await requeue_each(list(letters), selection, rate, send, remove)

    async def purge_dead_letters(
        self, topic: str, *, group: str | None, selection: DeadLetterSelection | None = None
    ) -> int:
        letters = self._dead.get((topic, group), [])
        kept = [dead for dead in letters if selection is not None and not selection.matches(dead)]
        removed = len(letters) - len(kept)
        letters[:] = kept
        return removed

    async def health_check(self) -> HealthStatus:
        started = time.perf_counter()
        await asyncio.sleep(0)
        problem = "closed" if self._closed else self.supervisor.problem()
        self._counters.record_health_check(problem is None)
        return HealthStatus(
            healthy=problem is None,
            component="inprocess",
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=problem or f"in-process, {len(self._groups)} subscription group(s)",
        )

    async def close(self) -> None:
        """Stop taking work, let the handlers already running finish (up to `drain_timeout`,
        then they are cancelled), stop the workers. Messages still queued or waiting for a
        retry are not started: they are dropped (the bus is not persistent), and counted in
        a warning. So close() takes at most about `drain_timeout`, whatever the backlog."""
        if self._closed:
            return
        self._closed = True
        for timer in self._timers:
            timer.cancel()
        if self._in_flight:
            try:
                async with asyncio.timeout(self.settings.drain_timeout):
                    await self._idle.wait()
            except TimeoutError:
                logger.warning(
                    "%d in-process handler(s) still running after drain_timeout (%.1fs); cancelling them",
                    self._in_flight,
                    self.settings.drain_timeout,
                )
        members = [m for g in self._groups.values() for m in g.members]
        self._groups.clear()
        await _stop([w for m in members for w in m.workers])
        dropped = self._dropped + sum(q.qsize() for q in {id(m.queue): m.queue for m in members}.values())
        if dropped:
            logger.warning("in-process bus closed with %d message(s) not yet handled; they are dropped", dropped)


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
