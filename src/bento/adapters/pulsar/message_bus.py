"""PulsarMessageBus: the MessageBus port on Apache Pulsar (pulsar-client).

pulsar-client is synchronous with callbacks. Calls that wait on the network
(client set-up, create producer, subscribe, close, readers) run in
`asyncio.to_thread`; `send_async` is called by one ClientCalls thread
(`_client_calls`), acks and nacks (which only queue work in the client) on the loop;
each subscriber receives on its own thread (`_subscription`);
every callback reaches the loop through a LoopBridge, so the event loop never waits
on Pulsar.

Topics map to `persistent://{tenant}/{namespace}/{topic}`. A group is a Pulsar
subscription (Shared by default; Key_Shared with `ordered=True`); `group=None` is a
private Exclusive subscription removed again on cancel. The message key (default:
the aggregate id) is the partition key. Failed messages are negatively acked and
redelivered; after `max_attempts` they go to `<topic>-<group>-DLQ` with the error
in their properties. Bodies are Bento's JSON envelopes (no Pulsar schema).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pulsar
from pydantic import ValidationError

from bento.adapters.pulsar._bridge import LoopBridge
from bento.adapters.pulsar._client import new_client, subscribe_arguments
from bento.adapters.pulsar._client_calls import ClientCalls
from bento.adapters.pulsar._dead_letters import read_dead_letters, removal_topic
from bento.adapters.pulsar._errors import translate_subscribe
from bento.adapters.pulsar._producers import Outgoing, ProducerPool
from bento.adapters.pulsar._runtime import Runtime
from bento.adapters.pulsar._subscription import PulsarSubscription, nack_delay_seconds
from bento.adapters.pulsar.settings import PulsarSettings, SubscriptionKind
from bento.adapters.shared.connecting import first_reachable, url_addresses
from bento.adapters.shared.dead_letters import replay_copy, requeue_each
from bento.adapters.shared.delivery import typed_handler
from bento.adapters.shared.lifecycle import StartsAndCloses, opened
from bento.adapters.shared.limits import all_within_limit, within_limit
from bento.adapters.shared.metrics import BusCounters
from bento.adapters.shared.reconnect import ObservedBus, ReconnectCallbacks
from bento.adapters.shared.supervision import Supervisor
from bento.adapters.shared.wire_headers import PULSAR, WireEncoder
from bento.application.credentials import mask_credentials
from bento.application.errors import BrokerUnavailableError, BusClosedError, ConfigurationError, SubscribeError
from bento.application.ports.capabilities import Capabilities, HealthStatus
from bento.application.ports.message_bus import DeadLetter, DeadLetterSelection, MessageHandler
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent

if TYPE_CHECKING:
    from bento.application.ports.message_bus import MessageBus

logger = logging.getLogger(__name__)

_HEALTH_TOPIC = "bento-health-check"
#: Messages publish_batch encodes between two turns of the loop (about 1 ms of work).
_ENCODE_SLICE = 256


class PulsarMessageBus(ObservedBus, StartsAndCloses):
    """MessageBus on Pulsar; see the module docstring. Use as an async context manager.

    `PulsarMessageBus(settings)`, or seed 002's `PulsarMessageBus(service_url=...)`:
    keyword options build (or override) the settings.
    """

    def __init__(
        self, settings: PulsarSettings | str | None = None, *, codec: JsonCodec | None = None, **options: Any
    ) -> None:
        if isinstance(settings, str):
            options = {"service_url": settings, **options}
            settings = None
        try:
            if settings is None:
                settings = PulsarSettings(**options)
            elif options:
                settings = PulsarSettings.model_validate({**settings.model_dump(), **options})
        except ValidationError as exc:
            raise ConfigurationError(
                [f"pulsar.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
            ) from exc
        self.settings = settings
        self.codec = codec or JsonCodec()
        self._wire = WireEncoder(self.codec, self.settings, PULSAR, "pulsar")
        self._counters = BusCounters()
        self.supervisor = Supervisor("Pulsar bus", self._counters)
        self._policy = settings.retry_policy()
        self._runtime: Runtime | None = None
        self._subscriptions: list[PulsarSubscription] = []
        self._reconnect_callbacks = ReconnectCallbacks(self._counters)
        self._monitor: asyncio.Task[None] | None = None
        self._names = itertools.count()
        self._closing = False
        self._closed = False

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            ordered_per_key=True,
            persistent=True,
            redelivery=True,
            dead_letter=True,
            pattern_subscriptions=self.settings.pattern_subscriptions,
            consumer_groups=True,
            broadcast=True,
            mechanism=(
                f"Pulsar subscriptions ({self.settings.subscription_type}; ordered: "
                f"{self.settings.ordered_subscription_type}); negative ack redelivery; DLQ topic "
                f"{self.settings.dead_letter_topic!r}"
            ),
        )

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Create the client and prove the broker answers (BrokerUnavailableError if not)."""
        if self._closed or self._closing:
            raise BusClosedError("this PulsarMessageBus was closed; build a new one")
        if self._runtime is not None:
            return
        # An unreachable broker is said at once: the client would retry for its whole
        # operation timeout, printing an ERROR line per attempt, to say the same thing.
        url = self.settings.service_url.get_secret_value()
        addresses = url_addresses(url, 6651 if self.settings.uses_tls else 6650)
        refused = await first_reachable(addresses, self.settings.connection_timeout_ms / 1000) if addresses else None
        if refused is not None:
            raise BrokerUnavailableError("Pulsar broker", url, refused)
        try:
            client = await asyncio.to_thread(new_client, self.settings)
        except ValueError as exc:  # pulsar-client quotes the URL it refuses: mask it, drop the raw error
            reason = mask_credentials(str(exc))[:200]
            raise ConfigurationError([f"pulsar.service_url: pulsar-client refused it ({reason})"]) from None
        bridge = LoopBridge(asyncio.get_running_loop())
        calls = ClientCalls(bridge)
        self._runtime = Runtime(
            client=client,
            settings=self.settings,
            codec=self.codec,
            policy=self._policy,
            bridge=bridge,
            calls=calls,
            metrics=self._counters,
            producers=ProducerPool(client, self.settings, bridge, calls),
            supervisor=self.supervisor,
        )
        status = await self.health_check()
        if not status.healthy:
            await self._shutdown_client()
            self._runtime = None
            raise BrokerUnavailableError("Pulsar broker", str(self.settings.service_url), status.detail)
        self._monitor = asyncio.create_task(self._watch_connections(), name="bento-pulsar-reconnect-monitor")

    async def close(self) -> None:
        """Stop receivers, drain in-flight handlers, flush producers, close the client.

        Handlers still running may publish until they finish; after that `publish`
        raises BusClosedError. Idempotent."""
        if self._closing:
            return
        self._closing = True
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(s.cancel() for s in subscriptions))
        self._closed = True
        if self._runtime is not None:
            await self._runtime.producers.close()
            await self._shutdown_client()

    async def _shutdown_client(self) -> None:
        assert self._runtime is not None
        await asyncio.to_thread(self._runtime.producers.stop_sending)
        try:
            await asyncio.to_thread(self._runtime.client.close)
        except pulsar.PulsarException as exc:
            logger.warning("closing the Pulsar client failed: %r", exc)

    def _running(self, action: str, topic: str) -> Runtime:
        return opened("the Pulsar bus", f"{action} {topic!r}", self._runtime, closed=self._closed)

    # -- publishing -------------------------------------------------------------------
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
        await self._send(topic, [(body, key or message.metadata.aggregate_id, wire_headers)])

    async def publish_batch(self, topic: str, messages: Sequence[DomainEvent]) -> None:
        """Pipelines the whole batch; returns when all are confirmed.

        The batch is encoded before the first send, in slices that give the loop a
        turn: a message that cannot be encoded fails the batch before anything went
        out, and encoding does not compete for the GIL with pulsar-client's send
        confirmations (interleaved, it cost several times its own time)."""
        encode = self._wire.encode
        outgoing: list[Outgoing] = []
        for start in range(0, len(messages), _ENCODE_SLICE):
            if start:
                await asyncio.sleep(0)
            for m in messages[start : start + _ENCODE_SLICE]:
                body, headers = encode(m, topic=topic)
                outgoing.append((body, m.metadata.aggregate_id, headers))
        all_within_limit((body for body, _, _ in outgoing), self.settings.max_message_bytes, topic, self._counters)
        await self._send(topic, outgoing)

    async def publish_raw(
        self, topic: str, body: bytes, *, key: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Sends `body` as given (no size check; the broker's own limit applies)."""
        await self._send(topic, [(body, key, headers)])

    async def _send(self, topic: str, messages: Sequence[Outgoing]) -> None:
        runtime = self._running("publish to", topic)
        try:
            await runtime.producers.send(self.settings.full_topic(topic), messages)
        except Exception:
            self._counters.publish_errors += len(messages)
            raise
        self._counters.messages_published += len(messages)

    # -- subscribing ------------------------------------------------------------------
    async def subscribe(
        self,
        topic: str,
        handler: MessageHandler,
        *,
        group: str | None = None,
        ordered: bool = False,
        message_type: type[DomainEvent] | None = None,
    ) -> PulsarSubscription:
        handler = typed_handler(handler, message_type)
        runtime = self._running("subscribe to", topic)
        if self._closing:
            raise BusClosedError(f"cannot subscribe to {topic!r}: the Pulsar bus is closing")
        s = self.settings
        kind: SubscriptionKind
        if ordered:
            kind = s.ordered_subscription_type
        elif group is None:
            kind = s.broadcast_subscription_type
        else:
            kind = s.subscription_type
        name = group if group is not None else f"bento-broadcast-{uuid.uuid4().hex[:12]}-{next(self._names)}"
        if "*" in topic and not s.pattern_subscriptions:
            raise SubscribeError(
                topic,
                "pattern subscriptions are off; set pattern_subscriptions=True "
                "(needs Apache Pulsar: pulsar-lite has no regex subscriptions)",
            )
        target, options = subscribe_arguments(s, topic, kind, nack_delay_ms=int(nack_delay_seconds(runtime) * 1000))
        try:
            consumer = await asyncio.to_thread(runtime.client.subscribe, target, name, **options)
        except pulsar.PulsarException as exc:
            raise translate_subscribe(topic, str(s.service_url), exc) from exc
        subscription = PulsarSubscription(
            runtime,
            consumer,
            topic=topic,
            group=group,
            handler=handler,
            ordered=ordered,
            broadcast=group is None,
            on_cancel=self._forget,
        )
        self._subscriptions.append(subscription)
        return subscription

    def _forget(self, subscription: PulsarSubscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    async def dead_letters(self, topic: str, *, group: str | None, limit: int = 100) -> list[DeadLetter]:
        """Reads `<topic>-<group>-DLQ` from the earliest entry with a Reader; nothing is consumed."""
        runtime = self._running("read dead letters of", topic)
        dlq = self.settings.dead_letter_topic_for(topic, group)
        try:
            return await asyncio.to_thread(
                read_dead_letters, runtime.client, dlq, topic=topic, group=group, limit=limit
            )
        except pulsar.PulsarException as exc:
            raise BrokerUnavailableError(
                "Pulsar broker", str(self.settings.service_url), f"cannot read dead letters from {dlq!r} ({exc!r})"
            ) from exc

    async def requeue_dead_letters(
        self,
        topic: str,
        *,
        group: str | None,
        selection: DeadLetterSelection | None = None,
        rate: float | None = None,
    ) -> list[DeadLetter]:
        """Each copy is sent with the letter's key and confirmed, then the letter's id is appended
        to `<dlq>-REMOVED` (see `_dead_letters`)."""
        runtime = self._running("requeue dead letters of", topic)
        dlq = self.settings.dead_letter_topic_for(topic, group)

        async def send(dead: DeadLetter) -> None:
            copy = replay_copy(self._wire, dead, topic=topic)
            await self._send(topic, [(copy.body, copy.key, copy.headers)])

        async def remove(dead: DeadLetter) -> None:
            await runtime.producers.send(removal_topic(dlq), [(dead.letter_id.encode(), dead.letter_id, {})])

        try:
            letters = await asyncio.to_thread(
                read_dead_letters, runtime.client, dlq, topic=topic, group=group, limit=None
            )
            return await requeue_each(letters, selection, rate, send, remove)
        except pulsar.PulsarException as exc:
            raise BrokerUnavailableError(
                "Pulsar broker", str(self.settings.service_url), f"cannot requeue dead letters of {dlq!r} ({exc!r})"
            ) from exc

    async def purge_dead_letters(
        self, topic: str, *, group: str | None, selection: DeadLetterSelection | None = None
    ) -> int:
        runtime = self._running("purge dead letters of", topic)
        dlq = self.settings.dead_letter_topic_for(topic, group)
        try:
            letters = await asyncio.to_thread(
                read_dead_letters, runtime.client, dlq, topic=topic, group=group, limit=None
            )
            chosen = [d for d in letters if selection is None or selection.matches(d)]
            marks: list[Outgoing] = [(d.letter_id.encode(), d.letter_id, {}) for d in chosen]
            await runtime.producers.send(removal_topic(dlq), marks)
        except pulsar.PulsarException as exc:
            raise BrokerUnavailableError(
                "Pulsar broker", str(self.settings.service_url), f"cannot purge dead letters of {dlq!r} ({exc!r})"
            ) from exc
        return len(chosen)

    # -- health and reconnection ------------------------------------------------------
    async def health_check(self) -> HealthStatus:
        """A partition-metadata lookup of a health topic: one real broker round trip."""
        if self._closed or self._runtime is None:
            detail = "closed" if self._closed else "not started"
            return HealthStatus(healthy=False, component="pulsar", detail=detail)
        client, started = self._runtime.client, time.perf_counter()
        topic = self.settings.full_topic(_HEALTH_TOPIC)
        try:
            async with asyncio.timeout(min(5.0, self.settings.operation_timeout_seconds)):
                await asyncio.to_thread(client.get_topic_partitions, topic)
            healthy, detail = True, ""
        except (TimeoutError, pulsar.PulsarException) as exc:
            healthy, detail = False, f"broker at {self.settings.service_url} did not answer: {exc!r}"
        latency = (time.perf_counter() - started) * 1000
        problem = self.supervisor.problem() if healthy else None
        if problem is not None:
            healthy, detail = False, problem
        self._counters.record_health_check(healthy)
        return HealthStatus(healthy=healthy, component="pulsar", latency_ms=latency, detail=detail)

    async def _watch_connections(self) -> None:
        connected = True
        while True:
            await asyncio.sleep(self.settings.reconnect_check_interval)
            now = self._all_connected()
            if connected and not now:
                self._counters.connection_errors += 1
                logger.warning(
                    "lost the connection to the Pulsar broker at %s; the client reconnects",
                    self.settings.service_url,
                )
                await self._reconnect_callbacks.disconnected()
            elif now and not connected:
                self._counters.reconnects += 1
                logger.info("reconnected to the Pulsar broker at %s", self.settings.service_url)
                await self._reconnect_callbacks.run()
            connected = now

    def _all_connected(self) -> bool:
        runtime = self._runtime
        if runtime is None:
            return False
        producers = runtime.producers.all()
        consumers = [s.consumer for s in self._subscriptions]
        return all(p.is_connected() for p in producers) and all(c.is_connected() for c in consumers)


if TYPE_CHECKING:

    def _conforms(bus: PulsarMessageBus) -> MessageBus:
        return bus
