"""One subscriber: Pullers on its consumers, `handle_delivery`, and settling on the server.

Settling follows the shared verdict: ACK → `ack`; RETRY → `nak(delay)` (JetStream
redelivers after the delay and counts the delivery); DEAD → publish the original body
to the dead-letter subject with the error headers, *then* `term`, so a crash in
between redelivers rather than loses it (the dead-letter publish carries a
`Nats-Msg-Id`, so doing it twice records it once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bento.adapters.messaging.delivery import Action, Verdict, handle_delivery
from bento.adapters.messaging.metrics import BusCounters
from bento.adapters.messaging.nats._puller import ConsumerGoneError, Puller
from bento.adapters.messaging.nats._subjects import Layout
from bento.adapters.messaging.nats.settings import NatsSettings
from bento.application.ports.message_bus import MessageHandler
from bento.application.serialization import JsonCodec

logger = logging.getLogger(__name__)

#: Extra dead-letter header: the group whose handler gave up (empty for broadcast).
GROUP_HEADER = "x-bento-group"


@dataclass(eq=False)
class Consumer:
    """One JetStream consumer. Durable ones belong to a group and outlive the process;
    ephemeral ones (broadcast) are recreated if the server forgot them (restart, idle)."""

    config: ConsumerConfig
    name: str | None = None

    @property
    def ephemeral(self) -> bool:
        return self.config.durable_name is None

    async def ensure(self, js: JetStreamContext, stream: str, *, recheck: bool = False) -> str:
        """Create (or, for a durable, update) the consumer; `recheck` after a failure
        re-creates one the server lost. Creating a durable is idempotent."""
        if self.name is not None and not recheck:
            return self.name
        if self.ephemeral and self.name is not None:
            try:
                await js.consumer_info(stream, self.name)
                return self.name
            except nats.js.errors.NotFoundError:
                logger.warning("ephemeral consumer %s vanished from %s; creating another", self.name, stream)
        info = await js.add_consumer(stream, self.config)
        self.name = info.name
        return info.name


def consumer_config(
    settings: NatsSettings, filter_subject: str, *, durable: str | None, ordered: bool, description: str
) -> ConsumerConfig:
    """ack_wait outlasts the handler timeout so a slow handler is not raced by a
    redelivery; max_deliver leaves one delivery beyond max_attempts so a consumer that
    dies during the last attempt still gets to dead-letter the message."""
    start = DeliverPolicy.ALL if durable and settings.new_group_start == "all" else DeliverPolicy.NEW
    return ConsumerConfig(
        durable_name=durable,
        description=description,
        deliver_policy=start,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait,
        max_deliver=settings.max_attempts + 1,
        filter_subject=filter_subject,
        max_ack_pending=1 if ordered else settings.max_ack_pending,
        inactive_threshold=None if durable else settings.ack_wait + 30.0,
    )


class NatsSubscription:
    """A live subscriber: Pullers over its consumers (`concurrency` each when unordered;
    one per partition consumer when ordered). `cancel` stops pulling, lets in-flight
    handlers finish (up to `drain_timeout`), and hands back what arrives meanwhile (nak,
    so group mates get it at once)."""

    def __init__(
        self,
        *,
        nc: Client,
        js: JetStreamContext,
        settings: NatsSettings,
        layout: Layout,
        codec: JsonCodec,
        counters: BusCounters,
        handler: MessageHandler,
        topic: str,
        group: str | None,
        consumers: list[Consumer],
        ordered: bool,
        on_cancel: Callable[[NatsSubscription], None],
    ) -> None:
        self._nc, self._js, self._settings, self._layout, self._codec = nc, js, settings, layout, codec
        self._counters, self._handler = counters, handler
        self._topic, self._group, self._consumers, self._ordered = topic, group, consumers, ordered
        self._policy = settings.retry_policy()
        self._on_cancel = on_cancel
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._pullers: set[Puller] = set()

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def group(self) -> str | None:
        return self._group

    def start(self) -> None:
        loops = 1 if self._ordered else self._settings.concurrency
        batch = 1 if self._ordered else self._settings.fetch_batch
        for consumer in self._consumers:
            for _ in range(loops):
                task = asyncio.create_task(self._pull(consumer, batch), name=f"bento-nats:{self._topic}")
                task.add_done_callback(_log_crash)
                self._tasks.append(task)

    async def cancel(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._on_cancel(self)
        for puller in list(self._pullers):
            puller.stop()
        grace = self._settings.drain_timeout + self._settings.fetch_timeout + 1.0
        _, pending = await asyncio.wait(self._tasks, timeout=grace) if self._tasks else (set(), set())
        for task in pending:
            task.cancel()
        if pending:
            logger.warning(
                "%d pull loop(s) on %r outlived the drain timeout and were cancelled",
                len(pending),
                self._topic,
            )
            await asyncio.wait(pending)
        for consumer in self._consumers:
            if consumer.ephemeral and consumer.name is not None:
                await self._delete_ephemeral(consumer.name)

    async def _delete_ephemeral(self, name: str) -> None:
        try:
            await self._js.delete_consumer(self._settings.stream_name, name)
        except nats.errors.Error as exc:  # it expires by itself after inactive_threshold
            logger.info("could not delete ephemeral consumer %s (%s); the server expires it", name, exc)

    # -- the pull loop ----------------------------------------------------------------
    async def _pull(self, consumer: Consumer, batch: int) -> None:
        """Run a Puller on the consumer; re-create the consumer and start over after a
        failure (server restart, deleted consumer), backing off up to 5 s."""
        stream, failures = self._settings.stream_name, 0
        while not self._stopping:
            try:
                name = await consumer.ensure(self._js, stream, recheck=failures > 0)
                puller = Puller(
                    self._nc,
                    stream=stream,
                    consumer=name,
                    batch=batch,
                    expires=self._settings.fetch_timeout,
                    drain_timeout=self._settings.drain_timeout,
                    on_message=self._handle,
                    on_stopped_message=self._give_back,
                )
                self._pullers.add(puller)
                if self._stopping:
                    puller.stop()
                try:
                    await puller.run()
                finally:
                    self._pullers.discard(puller)
                failures = 0
            except (ConsumerGoneError, nats.errors.Error) as exc:
                if self._stopping:
                    break
                failures += 1
                self._counters.consume_errors += 1
                logger.warning("pulling from %r failed (%s: %s); retrying", self._topic, type(exc).__name__, exc)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    async def _handle(self, msg: Msg, issued: float) -> None:
        try:
            if time.monotonic() - issued > self._settings.ack_wait / 2:
                await msg.in_progress()  # it waited long behind slow handlers; keep it ours
            await self._deliver(msg)
        except nats.errors.Error as exc:
            self._counters.connection_errors += 1
            logger.warning(
                "could not settle a message on %r (%s); the server redelivers it after ack_wait", self._topic, exc
            )

    async def _give_back(self, msg: Msg) -> None:
        """Fetched after cancel began: nak it so a group mate gets it now, not after ack_wait."""
        try:
            await msg.nak()
        except nats.errors.Error as exc:
            logger.info("could not hand back a message on %r (%s); it returns after ack_wait", self._topic, exc)

    async def _deliver(self, msg: Msg) -> None:
        topic = self._layout.topic_of(msg.subject)
        attempt = _delivery_count(msg.reply)
        verdict = await handle_delivery(
            self._codec,
            self._handler,
            msg.data,
            attempt=attempt,
            policy=self._policy,
            timeout=self._settings.handler_timeout,
            topic=topic,
            max_bytes=self._settings.max_message_bytes,
        )
        if verdict.action is Action.ACK:
            await msg.ack()
            self._counters.messages_consumed += 1
        elif verdict.action is Action.RETRY:
            self._counters.consume_errors += 1
            self._counters.retries += 1
            await msg.nak(delay=verdict.delay)
        else:
            self._counters.consume_errors += 1
            await self._dead_letter(msg, verdict, attempt, topic)

    async def _dead_letter(self, msg: Msg, verdict: Verdict, attempt: int, topic: str) -> None:
        headers = {k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-")}
        headers.update(verdict.dead_letter_headers(attempt, topic))
        headers[GROUP_HEADER] = self._group or ""
        headers = {k: _header_safe(v) for k, v in headers.items()}
        consumer = msg.metadata.consumer or "?"
        headers["Nats-Msg-Id"] = f"dlq:{consumer}:{msg.metadata.sequence.stream}"
        subject = self._layout.dead_letter_subject(self._group, topic)
        try:
            await self._js.publish(subject, msg.data, headers=headers, timeout=self._settings.publish_timeout)
        except nats.errors.Error as exc:
            # Not terminated: it comes back once more (max_deliver = max_attempts + 1) and
            # is dead-lettered then.
            logger.error(
                "could not dead-letter a message from %r to %s (%s); it will be redelivered",
                topic,
                subject,
                exc,
            )
            await msg.nak(delay=self._policy.delay_after(attempt))
            return
        await msg.term()
        self._counters.dead_lettered += 1


def _delivery_count(reply: str) -> int:
    """The delivery count from the ack subject, without building nats-py's Metadata:
    `$JS.ACK.<stream>.<consumer>.<delivered>.…` (9 tokens), or with domain and account
    hash `$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.…` (12 or more)."""
    tokens = reply.split(".")
    try:
        return max(1, int(tokens[4] if len(tokens) == 9 else tokens[6]))
    except (IndexError, ValueError):
        return 1


def _header_safe(value: str) -> str:
    """NATS headers are line-based: a CR or LF in a value would corrupt the frame."""
    return value.replace("\r", " ").replace("\n", " ")


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("pull loop %s stopped on an unexpected error", task.get_name(), exc_info=task.exception())
