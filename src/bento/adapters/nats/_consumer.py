"""One subscriber: Pullers on its consumers, `handle_delivery`, and settling on the server.

Settling follows the shared verdict: ACK → `ack`; RETRY → `nak(delay)` (JetStream
redelivers after the delay and counts the delivery); DEAD → publish the original body
to the dead-letter subject with the error headers, *then* `term`, so a crash in
between redelivers rather than loses it (the dead-letter publish carries a
`Nats-Msg-Id`, so doing it twice records it once).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bento.adapters.nats._connection import Connection
from bento.adapters.nats._limits import fit_dead_letter
from bento.adapters.nats._puller import ConsumerGoneError, Puller
from bento.adapters.nats._subjects import Layout
from bento.adapters.nats.settings import NatsSettings
from bento.adapters.shared.delivery import Action, FirstFailures, Verdict, handle_delivery
from bento.adapters.shared.metrics import BusCounters
from bento.application.ports.message_bus import MessageHandler
from bento.application.serialization import JsonCodec
from bento.application.wire import TransportFacts

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
    one per partition consumer when ordered). `cancel` stops pulling, hands back what
    waits in the client (nak, so group mates get it at once), lets running handlers
    finish until `drain_timeout` and cancels them after that.

    A pull loop never dies: any failure (server, consumer, or a bug) is logged, counted,
    reported by `failure` (which makes the bus's `health_check()` unhealthy) until a new
    puller runs, and retried with a back-off up to 5 s."""

    def __init__(
        self,
        *,
        connection: Connection,
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
        self._conn, self._settings, self._layout, self._codec = connection, settings, layout, codec
        self._counters, self._handler = counters, handler
        self._topic, self._group, self._consumers, self._ordered = topic, group, consumers, ordered
        self._policy = settings.retry_policy()
        self._first_failures = FirstFailures()
        self._on_cancel = on_cancel
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._pullers: set[Puller] = set()
        self._failures: dict[int, str] = {}
        self._wake = asyncio.Event()

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def group(self) -> str | None:
        return self._group

    @property
    def failure(self) -> str | None:
        """Why a pull loop of this subscriber is not running right now, or None."""
        return next(iter(self._failures.values()), None)

    def start(self) -> None:
        loops = 1 if self._ordered else self._settings.concurrency
        batch = 1 if self._ordered else self._settings.fetch_batch
        for consumer in self._consumers:
            for _ in range(loops):
                task = asyncio.create_task(self._pull(consumer, batch), name=f"bento-nats:{self._topic}")
                task.add_done_callback(_log_crash)
                self._tasks.append(task)

    def wake(self) -> None:
        """Cut a failing loop's back-off short (a new client is there)."""
        self._wake.set()

    async def cancel(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._on_cancel(self)
        deadline = time.monotonic() + self._settings.drain_timeout
        for puller in list(self._pullers):
            puller.stop(deadline)
        self._wake.set()
        _, pending = (
            await asyncio.wait(self._tasks, timeout=self._settings.drain_timeout + 0.5)
            if self._tasks
            else (set(), set())
        )
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
            _, js = self._conn.live()
            await js.delete_consumer(self._settings.stream_name, name)
        except nats.errors.Error as exc:  # it expires by itself after inactive_threshold
            logger.info("could not delete ephemeral consumer %s (%s); the server expires it", name, exc)

    # -- the pull loop ----------------------------------------------------------------
    async def _pull(self, consumer: Consumer, batch: int) -> None:
        """Run a Puller on the consumer; re-create the consumer and start over after a
        failure (server restart, deleted consumer, replaced client), backing off up to 5 s."""
        stream, failures, slot = self._settings.stream_name, 0, id(asyncio.current_task())
        while not self._stopping:
            try:
                nc, js = self._conn.live()
                name = await consumer.ensure(js, stream, recheck=failures > 0)
                puller = Puller(
                    nc,
                    stream=stream,
                    consumer=name,
                    batch=batch,
                    expires=self._settings.fetch_timeout,
                    drain_timeout=self._settings.drain_timeout,
                    on_message=self._handle,
                    on_stopped_message=self._give_back,
                    on_running=functools.partial(self._recovered, slot),
                )
                self._pullers.add(puller)
                if self._stopping:
                    puller.stop()
                try:
                    await puller.run()
                finally:
                    self._pullers.discard(puller)
                failures = 0
            except Exception as exc:  # a pull loop must outlive any failure
                if self._stopping:
                    break
                failures += 1
                self._counters.consume_errors += 1
                reason = f"{type(exc).__name__}: {exc}"[:300]
                self._failures[slot] = f"pulling from {self._topic!r} failed ({reason})"
                if isinstance(exc, ConsumerGoneError | nats.errors.Error):
                    logger.warning("pulling from %r failed (%s); retrying", self._topic, reason)
                else:
                    logger.error("pull loop on %r failed unexpectedly; retrying", self._topic, exc_info=exc)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(0.1 * 2**failures, 5.0))
        self._failures.pop(slot, None)

    def _recovered(self, slot: int) -> None:
        self._failures.pop(slot, None)

    async def _handle(self, msg: Msg, issued: float) -> None:
        """Never raises: whatever goes wrong settles the message or leaves it to ack_wait,
        and is logged and counted; nothing reaches nats-py's error callback."""
        try:
            if time.monotonic() - issued > self._settings.ack_wait / 2:
                await msg.in_progress()  # it waited long behind slow handlers; keep it ours
            await self._deliver(msg)
        except nats.errors.Error as exc:
            self._counters.connection_errors += 1
            logger.warning(
                "could not settle a message on %r (%s); the server redelivers it after ack_wait", self._topic, exc
            )
        except Exception:  # one message must never stop the subscriber
            self._counters.consume_errors += 1
            logger.exception("settling a message on %r failed; the server redelivers it after ack_wait", self._topic)

    async def _give_back(self, msg: Msg, delay: float) -> None:
        """Not handled (fetched after cancel began, or cut off): nak it so a group mate
        gets it after `delay` (see Puller), not after ack_wait."""
        try:
            await msg.nak(delay=delay or None)
        except nats.errors.Error as exc:
            logger.info("could not hand back a message on %r (%s); it returns after ack_wait", self._topic, exc)

    async def _deliver(self, msg: Msg) -> None:
        topic = self._layout.topic_of(msg.subject)
        attempt = _delivery_count(msg.reply)
        try:
            verdict = await handle_delivery(
                self._codec,
                self._handler,
                msg.data,
                attempt=attempt,
                policy=self._policy,
                timeout=self._settings.handler_timeout,
                topic=topic,
                max_bytes=self._settings.max_message_bytes,
                system="nats",
                group=self._group,
                headers=msg.headers,
                transport=lambda: transport_facts(msg),
                failures=self._first_failures,
            )
        except Exception as exc:  # handle_delivery does not raise; defence in depth for the pull loop
            logger.error("dead-lettering a message on %r that could not be processed", topic, exc_info=exc)
            verdict = Verdict(Action.DEAD, error_type=type(exc).__name__, error_message=str(exc)[:500] or repr(exc))
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
        sequence = msg.metadata.sequence.stream
        headers["Nats-Msg-Id"] = f"dlq:{consumer}:{sequence}"
        subject = self._layout.dead_letter_subject(self._group, topic)
        nc, js = self._conn.live()
        body, headers = fit_dead_letter(
            msg.data, headers, max_payload=nc.max_payload, stream=self._settings.stream_name, sequence=sequence
        )
        try:
            await js.publish(subject, body, headers=headers, timeout=self._settings.publish_timeout)
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


def transport_facts(msg: Msg) -> TransportFacts:
    """A delivery's id (its `Nats-Msg-Id`, else the stream and sequence) and when the stream stored
    it: the same on every redelivery, for a plain payload from a foreign producer."""
    meta = msg.metadata
    own = (msg.headers or {}).get("Nats-Msg-Id")
    return TransportFacts(message_id=own or f"{meta.stream}:{meta.sequence.stream}", timestamp=meta.timestamp)
