"""A continuous pull from one JetStream consumer, on a plain NATS subscription.

nats-py's `fetch()` is request → wait → return: between two batches nothing flows,
and every message costs a task and a timer. Here pull requests are sent to the
consumer's `MSG.NEXT` subject with our own inbox as reply, and the next request goes
out when half of what was asked for has arrived, so messages keep flowing while the
previous ones are handled (what newer clients call "consume"). nats-py runs the
callback in one task per subscription, so messages of one puller are handled one at
a time, in delivery order.

Bookkeeping: the server serves pull requests first-in first-out, so requests are a
FIFO of "messages still owed". A message pays the head; a 404/408/409 status closes
the head (no messages, expired, or refused); a request the server never answered
(lost in a reconnect) is dropped one second after its expiry. A 503 means nobody
serves the consumer's subject: the consumer is gone, and the puller stops with
ConsumerGoneError so the caller can re-create it.
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
    (`issued` is when its pull request went out: the message waited at most since then)."""

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
        on_stopped_message: Callable[[Msg], Awaitable[None]],
    ) -> None:
        self._nc, self._batch, self._expires, self._drain_timeout = nc, batch, expires, drain_timeout
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._request = json.dumps({"batch": batch, "expires": int(expires * 1e9)}).encode()
        self._on_message, self._on_stopped_message = on_message, on_stopped_message
        self._requests: deque[_Request] = deque()
        self._owed = 0
        self._inbox = ""
        self._stopping = False
        self._gone: str | None = None
        self._changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self) -> None:
        """Pull until `stop()`; then wait until every open request is settled (arrived
        messages are handed back with nak), so nothing is left stranded until ack_wait.
        Raises ConsumerGoneError, or nats errors from subscribing."""
        self._inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(self._inbox, cb=self._receive)
        try:
            await self._top_up()
            while not self._stopping and self._gone is None:
                await self._tick(self._expires)
                self._drop_lost()
                await self._top_up()
            if self._gone is not None:
                raise ConsumerGoneError(self._gone)
            deadline = time.monotonic() + self._expires + _LOST_AFTER
            while self._requests and time.monotonic() < deadline:
                await self._tick(max(0.01, deadline - time.monotonic()))
        finally:
            # Unsubscribing cancels nats-py's callback task: let a running handler finish.
            try:
                await asyncio.wait_for(self._idle.wait(), self._drain_timeout)
            except TimeoutError:
                logger.warning("a handler on %s outlived drain_timeout and is cancelled", self._subject)
            try:
                await sub.unsubscribe()
            except nats.errors.Error as exc:  # connection closed: the server dropped it already
                logger.debug("pull inbox already gone: %s", exc)

    async def _tick(self, timeout: float) -> None:
        """Until a message or status changed the bookkeeping, or `timeout` passed."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def stop(self) -> None:
        self._stopping = True
        self._changed.set()

    async def _top_up(self) -> None:
        if self._stopping or self._gone is not None or self._owed > self._batch // 2:
            return
        now = time.monotonic()
        self._requests.append(_Request(self._batch, now, now + self._expires))
        self._owed += self._batch
        await self._nc.publish(self._subject, self._request, reply=self._inbox)

    def _drop_lost(self) -> None:
        now = time.monotonic()
        while self._requests and self._requests[0].deadline + _LOST_AFTER < now:
            self._close_head()

    def _close_head(self) -> None:
        if self._requests:
            self._owed -= self._requests.popleft().owed
        self._changed.set()

    async def _receive(self, msg: Msg) -> None:
        headers = msg.headers
        if not msg.data and headers and "Status" in headers:
            if self._on_status(headers.get("Status", ""), headers.get("Description", "")):
                await self._top_up()
            return
        issued = self._requests[0].issued if self._requests else time.monotonic()
        if self._requests:
            head = self._requests[0]
            head.owed -= 1
            self._owed -= 1
            if head.owed <= 0:
                self._requests.popleft()
                self._changed.set()
        if self._stopping:
            await self._on_stopped_message(msg)
            return
        await self._top_up()  # the next batch travels while this one is handled
        self._idle.clear()
        try:
            await self._on_message(msg, issued)
        finally:
            self._idle.set()

    def _on_status(self, status: str, description: str) -> bool:
        """Close the request the status answers; True when asking again at once is right
        (no messages / expired), False to wait for the next tick (refusals)."""
        if status == "100":  # idle heartbeat: not requested, harmless
            return False
        self._close_head()
        if status in ("404", "408"):
            return True
        if status == "503":
            self._gone = "no responders for the consumer (deleted, or JetStream restarted)"
        elif status == "409" and "deleted" in description.lower():
            self._gone = f"consumer deleted ({description})"
        else:
            logger.info("pull request on %s answered %s %s", self._subject, status, description)
        return False
