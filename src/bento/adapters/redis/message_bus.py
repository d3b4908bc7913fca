"""RedisMessageBus: the MessageBus port on Redis Streams (durable) or pub/sub (broadcast).

Durable mode (default): each topic is one stream, `{prefix}stream:{topic}` (or
`partitions` streams split by CRC32 of the key). A subscriber group is a Redis
consumer group created at `$` (it sees what is published from then on); `group=None`
makes a throwaway group per subscriber, destroyed on cancel. Entries are read in
batches and acknowledged after their handler returned; failures are retried with
back-off and then copied to `{prefix}dlq:{topic}:{group}` with the error; entries of
dead consumers are reclaimed after `claim_idle_ms`. `ordered=True` gives per-key order
through partition ownership. Pattern topics (`*`, `?`, `[seq]`) are resolved against
the `{prefix}topics` registry that every publisher adds its topics to.

Broadcast mode: `PUBLISH {prefix}{topic}` and (P)SUBSCRIBE, as seed 001's redis event
backend; at-most-once (see `_broadcast`).

redis-py's asyncio client is used throughout; its exceptions are translated at this
edge into PublishError, SubscribeError and BrokerUnavailableError.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.typing import EncodableT, FieldT

from bento.adapters.redis import _backlog
from bento.adapters.redis._broadcast import BroadcastSubscription
from bento.adapters.redis._durable import DurableContext
from bento.adapters.redis._errors import (
    RedisError,
    checked_client,
    publish_error,
    unavailable,
)
from bento.adapters.redis._keys import Keys, is_pattern, partition_of
from bento.adapters.redis._ordered import OrderedSubscription
from bento.adapters.redis._pipeliner import Pipeliner
from bento.adapters.redis._pubsub import PubSubHub
from bento.adapters.redis._replies import REPLY_MAXLEN, RedisReplies, is_reply_address, reply_stream
from bento.adapters.redis._streams import StreamSubscription
from bento.adapters.redis.settings import RedisSettings
from bento.adapters.shared.dead_letters import replay_copy, requeue_each
from bento.adapters.shared.delivery import typed_handler
from bento.adapters.shared.lifecycle import StartsAndCloses, opened
from bento.adapters.shared.limits import all_within_limit, within_limit
from bento.adapters.shared.reconnect import ObservedBus, ReconnectCallbacks, watch_connection
from bento.adapters.shared.supervision import Supervisor
from bento.adapters.shared.wire_headers import REDIS, WireEncoder
from bento.application.bus_metrics import BusCounters
from bento.application.errors import BusClosedError, PublishError, SubscribeError
from bento.application.ports.backlog import Backlog
from bento.application.ports.capabilities import Capabilities, HealthStatus
from bento.application.ports.message_bus import DeadLetter, DeadLetterSelection, MessageHandler
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent

logger = logging.getLogger(__name__)

DURABLE_CAPABILITIES = Capabilities(
    ordered_per_key=True,
    persistent=True,
    redelivery=True,
    dead_letter=True,
    pattern_subscriptions=True,
    consumer_groups=True,
    broadcast=True,
    mechanism="Redis Streams consumer groups; XACK after success, XAUTOCLAIM of dead consumers, dead-letter "
    "stream per group; per-key order by CRC32 partition streams with one leased owner each; patterns via a "
    "topic registry set; persistence is the Redis server's (AOF/RDB)",
)
BROADCAST_CAPABILITIES = Capabilities(
    ordered_per_key=False,
    persistent=False,
    redelivery=False,
    dead_letter=False,
    pattern_subscriptions=True,
    consumer_groups=False,
    broadcast=True,
    transport_headers=False,
    mechanism="Redis pub/sub (PUBLISH/PSUBSCRIBE), at-most-once; bounded per-subscriber queues drop the oldest",
)
_Subscription = StreamSubscription | OrderedSubscription | BroadcastSubscription


class RedisMessageBus(ObservedBus, StartsAndCloses):
    """MessageBus on Redis; see the module docstring. Use as `async with RedisMessageBus(settings)`.

    `client` lets a caller share an existing `redis.asyncio.Redis` (it is then not closed here).
    redis-py reconnects on the next command by itself; a PING every `connection_check_interval`
    notices the outage and the return, for the counters and the connection callbacks."""

    def __init__(self, settings: RedisSettings, *, codec: JsonCodec | None = None, client: Redis | None = None) -> None:
        self.settings = settings
        self.codec = codec or JsonCodec()
        self._wire = WireEncoder(self.codec, settings, REDIS, "redis")
        self._keys = Keys(settings.key_prefix, settings.partitions)
        self._client, self._owns_client = client, client is None
        self._ctx: DurableContext | None = None
        self._pipeliner: Pipeliner | None = None
        self._replies: RedisReplies | None = None
        self._hub: PubSubHub | None = None
        self._subscriptions: set[_Subscription] = set()
        self._modes: dict[tuple[str, str], bool] = {}  # (topic, group) -> ordered, to refuse mixing
        self._known_topics: set[str] = set()
        self._round_robin = itertools.count()
        self._instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._closed = False
        self._counters = BusCounters()
        self._reconnect_callbacks = ReconnectCallbacks(self._counters)
        self.supervisor = Supervisor("Redis bus", self._counters)
        self._watch: asyncio.Task[None] | None = None

    @property
    def capabilities(self) -> Capabilities:
        return BROADCAST_CAPABILITIES if self.settings.mode == "broadcast" else DURABLE_CAPABILITIES

    async def start(self) -> None:
        """Connect and check Redis answers; raises BrokerUnavailableError if it does not."""
        if self._closed:
            raise BusClosedError("this RedisMessageBus was closed; build a new one")
        if self._ctx is not None:
            return
        client = await checked_client(
            self.settings.url.get_secret_value(), self._client, max_connections=self.settings.max_connections
        )
        self._client = client
        self._ctx = DurableContext(
            client, self._keys, self.codec, self.settings, self.settings.retry_policy(), self.supervisor
        )
        self._pipeliner = Pipeliner(client, self.settings.publish_pipelines)
        if self.settings.mode == "broadcast":
            self._hub = PubSubHub(client, self.supervisor)
        else:
            self._replies = RedisReplies(self._ctx)
        where = f"Redis at {self._address()}"
        self._watch = self.supervisor.spawn(
            "connection watch",
            lambda: watch_connection(
                self._answers, self.settings.connection_check_interval, self._counters, self._reconnect_callbacks, where
            ),
            stopping=lambda: self._closed,
        )

    def _address(self) -> str:
        url = self.settings.url.get_secret_value()
        return url.rsplit("@", 1)[-1].split("://", 1)[-1]

    async def _answers(self) -> bool:
        if self._client is None:
            return False
        try:
            async with asyncio.timeout(min(5.0, self.settings.connection_check_interval * 2)):
                await self._client.ping()
        except (RedisError, OSError, TimeoutError):
            return False
        return True

    @property
    def direct_reply(self) -> RedisReplies | None:
        """Replies to this process on a private stream read without a group (the DirectReplyPort;
        durable mode, once started)."""
        return self._replies

    def _context(self, action: str, topic: str) -> DurableContext:
        return opened("the Redis bus", f"{action} {topic!r}", self._ctx, closed=self._closed)

    # -- publishing ---------------------------------------------------------------------
    async def publish(
        self,
        topic: str,
        message: DomainEvent,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if self._replies is not None and is_reply_address(topic):
            body = self._wire.encode_private(message, topic=topic)
            within_limit(body, self.settings.max_message_bytes, topic, self._counters)
            await self._send(topic, [body], None)
            return
        body, wire_headers = self._wire.encode(message, headers, topic=topic)
        within_limit(body, self.settings.max_message_bytes, topic, self._counters)
        await self._send(topic, [body], [key or message.metadata.aggregate_id or message.message_id], [wire_headers])

    async def publish_batch(self, topic: str, messages: Sequence[DomainEvent]) -> None:
        """One pipeline for the whole batch: a single round trip, returns when Redis took every entry."""
        encode = self._wire.encode
        keys = None if self.settings.partitions == 1 else [m.metadata.aggregate_id or m.message_id for m in messages]
        encoded = [encode(m, topic=topic) for m in messages]
        bodies = [body for body, _ in encoded]
        all_within_limit(bodies, self.settings.max_message_bytes, topic, self._counters)
        await self._send(topic, bodies, keys, [headers for _, headers in encoded])

    async def publish_raw(
        self, topic: str, body: bytes, *, key: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """`headers` travel in the entry's `h` field in durable mode; pub/sub carries the body only.
        The body is sent as given (no size check): consumers dead-letter what they cannot take."""
        await self._send(topic, [body], [key], [headers])

    async def _send(
        self,
        topic: str,
        bodies: list[bytes],
        keys: Sequence[str | None] | None,
        headers: Sequence[Mapping[str, str] | None] | None = None,
    ) -> None:
        """The hot path of every publish: one pipeline, one XADD per message with the body in `b`
        and the transport headers (docs/wire-format.md) as JSON in `h`. A single message to a
        known durable topic is one plain XADD: measured interleaved with redis-py, the
        pipeline's own set-up and release added about 20 µs (a fifth) to that call's p50."""
        ctx = self._context("publish to", topic)
        if is_pattern(topic):
            raise PublishError(topic, "a topic name cannot contain wildcards (*, ?, [)")
        durable, settings = self.settings.mode == "durable", self.settings
        reply = self._replies is not None and is_reply_address(topic)
        new_topic = durable and not reply and topic not in self._known_topics

        def commands(pipe: Pipeline) -> int:
            if not durable:
                channel = self._keys.channel(topic)
                for body in bodies:
                    pipe.publish(channel, body)
                return len(bodies)
            if new_topic:
                pipe.sadd(self._keys.topics, topic)
            if reply:  # a reply stream: only while its reader keeps it (see _replies), never a topic
                trim: dict[str, Any] = {"maxlen": REPLY_MAXLEN, "approximate": True, "nomkstream": True}
                single: str | None = reply_stream(ctx, topic)
            else:
                trim = {"maxlen": settings.maxlen, "approximate": True} if settings.maxlen else {}
                single = self._keys.stream(topic) if keys is None or settings.partitions == 1 else None
            for index, body in enumerate(bodies):
                stream = single or self._stream(topic, keys[index] if keys else None)
                entry: dict[FieldT, EncodableT] = {b"b": body}
                entry_headers = headers[index] if headers else None
                if entry_headers:
                    entry[b"h"] = json.dumps(entry_headers, separators=(",", ":")).encode()
                pipe.xadd(stream, entry, **trim)
            return len(bodies) + new_topic

        assert self._pipeliner is not None  # set with the context
        try:
            await self._pipeliner.send(commands)
        except RedisError as exc:
            self._counters.publish_errors += len(bodies)
            raise publish_error(topic, exc) from exc
        self._counters.messages_published += len(bodies)
        if new_topic:
            self._known_topics.add(topic)

    @staticmethod
    def _entry(body: bytes, headers: Mapping[str, str] | None) -> dict[FieldT, EncodableT]:
        entry: dict[FieldT, EncodableT] = {b"b": body}
        if headers:
            entry[b"h"] = json.dumps(headers, separators=(",", ":")).encode()
        return entry

    def _stream(self, topic: str, key: str | None) -> str:
        partitions = self.settings.partitions
        if partitions == 1:
            return self._keys.stream(topic)
        if key is None:
            return self._keys.stream(topic, next(self._round_robin) % partitions)
        return self._keys.stream(topic, partition_of(key, partitions))

    # -- subscribing --------------------------------------------------------------------
    async def subscribe(
        self,
        topic: str,
        handler: MessageHandler,
        *,
        group: str | None = None,
        ordered: bool = False,
        message_type: type[DomainEvent] | None = None,
    ) -> _Subscription:
        handler = typed_handler(handler, message_type)
        ctx = self._context("subscribe to", topic)
        consumer = f"{self._instance}:{uuid.uuid4().hex[:6]}"
        forget = self._subscriptions.discard
        subscription: _Subscription
        if self.settings.mode == "broadcast":
            if ordered:
                raise SubscribeError(topic, "broadcast (pub/sub) mode does not offer per-key order")
            assert self._hub is not None
            subscription = BroadcastSubscription(ctx, self._hub, topic, handler, group, forget)
        else:
            if ordered and is_pattern(topic):
                raise SubscribeError(topic, "ordered subscriptions need a plain topic, not a pattern")
            if group is not None and self._modes.setdefault((topic, group), ordered) != ordered:
                raise SubscribeError(topic, f"group {group!r} is already subscribed with ordered={not ordered}")
            name = group if group is not None else f"~b-{uuid.uuid4().hex}"
            if ordered:
                subscription = OrderedSubscription(ctx, topic, handler, name, consumer, forget)
            else:
                subscription = StreamSubscription(ctx, topic, handler, name, group, consumer, forget)
        try:
            await subscription.start()
        except RedisError as exc:
            await subscription.cancel()
            raise SubscribeError(topic, f"{type(exc).__name__}: {exc}") from exc
        self._subscriptions.add(subscription)
        return subscription

    async def dead_letters(self, topic: str, *, group: str | None, limit: int = 100) -> list[DeadLetter]:
        ctx = self._context("read dead letters of", topic)
        if self.settings.mode == "broadcast":
            return []
        try:
            return await ctx.read_dead_letters(topic, group, limit)
        except RedisError as exc:
            raise unavailable(str(self.settings.url), exc) from exc

    async def backlog(self, topic: str, *, group: str) -> Backlog:
        """BacklogProbe: the group's lag over the topic's streams and its dead-letter stream's length."""
        ctx = self._context("probe the backlog of", topic)
        if self.settings.mode == "broadcast":
            return Backlog(topic, group, None, None)
        try:
            return await _backlog.probe(ctx.redis, self._keys, topic, group)
        except RedisError as exc:
            raise unavailable(str(self.settings.url), exc) from exc

    async def requeue_dead_letters(
        self,
        topic: str,
        *,
        group: str | None,
        selection: DeadLetterSelection | None = None,
        rate: float | None = None,
    ) -> list[DeadLetter]:
        """Each letter's copy is XADDed to the topic's stream and the letter XDELed from the
        dead-letter stream in one MULTI/EXEC: on Redis a letter is requeued exactly once."""
        ctx = self._context("requeue dead letters of", topic)
        if self.settings.mode == "broadcast":
            return []
        dlq = self._keys.dead_letters(topic, group)
        trim = {"maxlen": self.settings.maxlen, "approximate": True} if self.settings.maxlen else {}

        async def send_and_remove(dead: DeadLetter) -> None:
            # A pattern subscription's letter goes back to the topic it came from.
            target = dead.topic if not is_pattern(dead.topic) else topic
            copy = replay_copy(self._wire, dead, topic=target)
            entry: dict[FieldT, EncodableT] = {b"b": copy.body, b"h": json.dumps(copy.headers).encode()}
            async with ctx.redis.pipeline(transaction=True) as pipe:
                pipe.sadd(self._keys.topics, target)
                pipe.xadd(self._stream(target, copy.key), entry, **trim)  # type: ignore[arg-type]
                pipe.xdel(dlq, dead.letter_id)
                await pipe.execute()

        async def removed(dead: DeadLetter) -> None:
            return None  # in the same transaction as the send

        try:
            letters = await ctx.read_dead_letters(topic, group, None)
            return await requeue_each(letters, selection, rate, send_and_remove, removed)
        except RedisError as exc:
            raise unavailable(str(self.settings.url), exc) from exc

    async def purge_dead_letters(
        self, topic: str, *, group: str | None, selection: DeadLetterSelection | None = None
    ) -> int:
        ctx = self._context("purge dead letters of", topic)
        if self.settings.mode == "broadcast":
            return 0
        dlq = self._keys.dead_letters(topic, group)
        try:
            if selection is None:
                async with ctx.redis.pipeline(transaction=True) as pipe:
                    pipe.xlen(dlq)
                    pipe.delete(dlq)
                    count, _ = await pipe.execute()
                return int(count)
            chosen = [d.letter_id for d in await ctx.read_dead_letters(topic, group, None) if selection.matches(d)]
            return int(await ctx.redis.xdel(dlq, *chosen)) if chosen else 0
        except RedisError as exc:
            raise unavailable(str(self.settings.url), exc) from exc

    async def health_check(self) -> HealthStatus:
        component = f"redis-{self.settings.mode}"
        if self._ctx is None or self._closed:
            return HealthStatus(healthy=False, component=component, detail="closed" if self._closed else "not started")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(5.0):
                await self._ctx.redis.ping()
        except (RedisError, TimeoutError) as exc:
            self._counters.record_health_check(False)
            return HealthStatus(
                healthy=False,
                component=component,
                latency_ms=(time.perf_counter() - started) * 1000,
                detail=f"{type(exc).__name__}: {exc}",
            )
        problem = self.supervisor.problem()
        self._counters.record_health_check(problem is None)
        return HealthStatus(
            healthy=problem is None,
            component=component,
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=problem or f"{len(self._subscriptions)} subscription(s)",
        )

    async def close(self) -> None:
        """Stop every subscription (each finishes the batch in hand, up to `drain_timeout`), then disconnect.
        Entries still waiting for a retry stay pending in Redis; another member reclaims them."""
        if self._closed:
            return
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        await asyncio.gather(*(s.cancel() for s in list(self._subscriptions)))
        if self._pipeliner is not None:
            await self._pipeliner.close()
        if self._hub is not None:
            await self._hub.close()
        if self._client is not None and self._owns_client:
            try:
                await self._client.aclose()
            except RedisError as exc:
                logger.warning("closing the Redis connection failed: %s", exc)
