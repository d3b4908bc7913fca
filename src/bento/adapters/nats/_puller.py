"""A continuous pull from one JetStream consumer, on a plain NATS subscription.

nats-py's `fetch()` is request → wait → return: between two batches nothing flows,
and every message costs a task and a timer. Here pull requests are sent to the
consumer's `MSG.NEXT` subject with our own inbox as reply, and more is asked for as
soon as half of `batch` is free again, so messages keep flowing while the previous ones
are handled (what newer clients call "consume").

The bound: messages *owed* by open requests plus messages *held* in the client
(waiting in the queue, or in the handler) never exceed `batch`. nats-py's callback
only counts a message in (it runs at arrival, not after the previous handler) and
queues it; one worker task handles the queue in delivery order. Counting at arrival
matters: counting when a handler starts made a slow handler's backlog look "still
owed", the request was then dropped as lost and another batch asked for, until the
client held `max_ack_pending` messages.

Bookkeeping: the server serves pull requests first-in first-out, so requests are a
FIFO of "messages still owed". A message pays the head; a 404/408/409 status closes
the head (no messages, expired, or refused); a request the server never answered
(lost in a reconnect) is dropped one second after its expiry. A 503, a deleted
consumer or a push consumer under the name means the consumer cannot be pulled from:
the puller stops with ConsumerGoneError so the caller can re-create it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

logger = logging.getLogger(__name__)

_LOST_AFTER = 1.0  # seconds past its expiry before an unanswered request counts as lost


class ConsumerGoneError(Exception):
    """The consumer does not answer pull requests (deleted, or JetStream restarted without it)."""


@dataclass(slots=True)
class _Request:
    owed: int
    issued: float
    deadline: float


class Puller:
    """Pulls from `consumer` until `stop()`; `on_message(msg, issued)` handles one message
    (`issued` is when its pull request went out: the message waited at most since then),
    `on_running()` is called once the consumer answered a request normally,
    `on_stopped_message(msg, delay)` hands back one that will not be handled (nak after
    `delay`: until our open requests expired, so the server does not send it right back
    to them and count a delivery each time)."""

    def __init__(
        self,
        nc: Client,
        *,
        stream: str,
        consumer: str,
        batch: int,
        expires: float,
        drain_timeout: float,
        on_message: Callable[[Msg, float], Awaitable[None]],
        on_stopped_message: Callable[[Msg, float], Awaitable[None]],
        on_running: Callable[[], None] = lambda: None,
    ) -> None:
        self._nc, self._batch, self._expires, self._drain_timeout = nc, batch, expires, drain_timeout
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._on_message, self._on_stopped_message, self._on_running = on_message, on_stopped_message, on_running
        self._requests: deque[_Request] = deque()
        self._owed = 0
        self._waiting: deque[tuple[Msg, float]] = deque()
        self._in_handler: Msg | None = None
        self._inbox = ""
        self._stopping = False
        self._deadline: float | None = None
        self._gone: str | None = None
        self._served = False
        self._changed = asyncio.Event()
        self._arrived = asyncio.Event()

    @property
    def held(self) -> int:
        """Messages in the client: waiting for the handler, or in it."""
        return len(self._waiting) + (self._in_handler is not None)

    async def run(self) -> None:
        """Pull until `stop()`. Then hand back what waits, give the running handler until
        the stop deadline (`drain_timeout` after `stop()`), cancel it after that, and keep
        handing back what open requests still bring until the same deadline.
        Raises ConsumerGoneError, or nats errors from subscribing and requesting."""
        self._inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(self._inbox, cb=self._receive)
        worker = asyncio.create_task(self._work(), name=f"bento-nats-handler:{self._subject}")
        stopped = False
        try:
            await self._top_up()
            while not self._stopping and self._gone is None:
                await self._tick(self._expires)
                if worker.done():
                    worker.result()  # the worker never ends on its own; re-raise what ended it
                    raise RuntimeError("the handler task of a puller ended unexpectedly")
                self._drop_lost()
                await self._top_up()
            if self._gone is not None:
                raise ConsumerGoneError(self._gone)
            stopped = True
        finally:
            self._stopping = True
            deadline = self._deadline or time.monotonic() + self._drain_timeout
            # After a failure open requests will not be served: do not wait for them.
            await self._wind_down(worker, deadline, settle_requests=stopped)
            try:
                await sub.unsubscribe()
            except nats.errors.Error as exc:  # connection closed: the server dropped it already
                logger.debug("pull inbox already gone: %s", exc)

    def stop(self, deadline: float | None = None) -> None:
        """Stop asking for messages; in-flight handling may go on until `deadline`
        (a `time.monotonic()` value; default `drain_timeout` from now)."""
        if not self._stopping:
            self._deadline = deadline if deadline is not None else time.monotonic() + self._drain_timeout
        self._stopping = True
        self._changed.set()
        self._arrived.set()

    async def _wind_down(self, worker: asyncio.Task[None], deadline: float, *, settle_requests: bool) -> None:
        while self._waiting:
            await self._hand_back(self._waiting.popleft()[0])
        self._arrived.set()
        if not worker.done():
            _, pending = await asyncio.wait({worker}, timeout=max(0.0, deadline - time.monotonic()))
            if pending:
                logger.warning("a handler on %s outlived drain_timeout and is cancelled", self._subject)
                worker.cancel()
                await asyncio.wait(pending)
        # Requests still open may bring messages: hand them back rather than strand them
        # until ack_wait, but never past the deadline.
        while settle_requests and self._requests and time.monotonic() < deadline:
            await self._tick(max(0.01, deadline - time.monotonic()))

    async def _work(self) -> None:
        """Handle waiting messages one at a time, in delivery order."""
        while not self._stopping:
            if not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            msg, issued = self._waiting.popleft()
            self._in_handler = msg
            try:
                await self._on_message(msg, issued)
            except asyncio.CancelledError:
                await self._hand_back(msg)  # cut off by the drain deadline
                raise
            finally:
                self._in_handler = None
            await self._safe_top_up()

    async def _hand_back(self, msg: Msg) -> None:
        last = max((r.deadline for r in self._requests), default=0.0)
        await self._on_stopped_message(msg, max(0.0, last - time.monotonic()) + 0.1 if self._requests else 0.0)

    async def _tick(self, timeout: float) -> None:
        """Until a message or status changed the bookkeeping, or `timeout` passed."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def _top_up(self) -> None:
        free = self._batch - self._owed - self.held
        if self._stopping or self._gone is not None or free < max(1, (self._batch + 1) // 2):
            return
        now = time.monotonic()
        self._requests.append(_Request(free, now, now + self._expires))
        self._owed += free
        request = json.dumps({"batch": free, "expires": int(self._expires * 1e9)}).encode()
        await self._nc.publish(self._subject, request, reply=self._inbox)

    async def _safe_top_up(self) -> None:
        """From a callback: a failed request is retried by the loop's next tick."""
        try:
            await self._top_up()
        except nats.errors.Error as exc:
            logger.debug("pull request on %s not sent (%s); the loop retries", self._subject, exc)
            self._changed.set()

    def _drop_lost(self) -> None:
        now = time.monotonic()
        while self._requests and self._requests[0].deadline + _LOST_AFTER < now:
            self._close_head()

    def _close_head(self) -> None:
        if self._requests:
            self._owed -= self._requests.popleft().owed
        self._changed.set()

    async def _receive(self, msg: Msg) -> None:
        """nats-py's callback: count the message in and queue it; never raises, so
        nothing reaches nats-py's error callback."""
        headers = msg.headers
        if not msg.data and headers and "Status" in headers:
            if self._on_status(headers.get("Status", ""), headers.get("Description", "")):
                self._confirm_served()
                await self._safe_top_up()
            return
        self._confirm_served()
        issued = self._requests[0].issued if self._requests else time.monotonic()
        if self._requests:
            head = self._requests[0]
            head.owed -= 1
            self._owed -= 1
            if head.owed <= 0:
                self._requests.popleft()
                self._changed.set()
        if self._stopping:
            await self._hand_back(msg)
            return
        self._waiting.append((msg, issued))
        self._arrived.set()

    def _confirm_served(self) -> None:
        """The consumer answered a request normally (a message, or an expiry): tell the
        owner once that this puller is running."""
        if not self._served:
            self._served = True
            self._on_running()

    def _on_status(self, status: str, description: str) -> bool:
        """Close the request the status answers; True when asking again at once is right
        (no messages / expired), False to wait for the next tick (refusals)."""
        if status == "100":  # idle heartbeat: not requested, harmless
            return False
        self._close_head()
        if status in ("404", "408"):
            return True
        lowered = description.lower()
        if status == "503":
            self._gone = "no responders for the consumer (deleted, or JetStream restarted)"
        elif status == "409" and ("deleted" in lowered or "push based" in lowered):
            self._gone = f"the consumer cannot be pulled from ({description})"
        else:
            logger.info("pull request on %s answered %s %s", self._subject, status, description)
        if self._gone is not None:
            self._changed.set()
        return False
