"""NatsRequestReply: NATS core request/reply (the RequestReplyPort) beside the JetStream bus.

Requests go to `{prefix}_rpc.{topic}`, outside the stream's `{prefix}.>` capture, so they are
never stored; servers subscribe with a queue group, and NATS delivers each request to one of
them and routes the answer to the requester's inbox. No responder is a fast TimeoutError
(nats-py's NoRespondersError). Handlers run as tasks (nats-py runs one subscription's
callbacks one at a time), at most `max_in_flight` at once; `cancel` unsubscribes, then waits
for the running ones.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING

import nats.errors
from nats.aio.msg import Msg

from bento.application import telemetry
from bento.application.errors import DeserializationError
from bento.application.ports.request_reply import RequestHandler
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent

if TYPE_CHECKING:
    from nats.aio.subscription import Subscription as NatsCoreSubscription

    from bento.adapters.nats._connection import Connection
    from bento.adapters.nats.settings import NatsSettings

logger = logging.getLogger(__name__)


class NatsRequestReply:
    def __init__(self, connection: Connection, settings: NatsSettings, codec: JsonCodec, max_in_flight: int = 256):
        self._conn, self._settings, self._codec = connection, settings, codec
        self._max_in_flight = max_in_flight

    def subject(self, topic: str) -> str:
        return f"{self._settings.subject_prefix}_rpc.{topic}"

    async def request(self, topic: str, message: DomainEvent, *, timeout: float) -> DomainEvent:
        nc, _ = self._conn.live()
        try:
            reply = await nc.request(self.subject(topic), self._codec.encode(message), timeout=timeout)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise TimeoutError(str(exc)) from exc
        return self._codec.decode(reply.data)

    async def serve(self, topic: str, handler: RequestHandler, *, group: str) -> _Served:
        nc, _ = self._conn.live()
        served = _Served(topic, group, handler, self._codec, self._max_in_flight)
        served.subscription = await nc.subscribe(self.subject(topic), queue=group, cb=served.on_message)
        return served


class _Served:
    """One served topic (a Subscription of the MessageBus port)."""

    def __init__(self, topic: str, group: str, handler: RequestHandler, codec: JsonCodec, max_in_flight: int) -> None:
        self._topic, self._group, self._handler, self._codec = topic, group, handler, codec
        self._max_in_flight = max_in_flight
        self._running: set[asyncio.Task[None]] = set()
        self._room: asyncio.Future[None] | None = None
        self.subscription: NatsCoreSubscription | None = None

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def group(self) -> str | None:
        return self._group

    async def on_message(self, msg: Msg) -> None:
        # A task per request (nats-py runs one subscription's callbacks one at a time); at most
        # `max_in_flight`, then this callback, and so the subscription, waits for room.
        while len(self._running) >= self._max_in_flight:
            self._room = asyncio.get_running_loop().create_future()
            await self._room
        task = asyncio.create_task(self._answer(msg))
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    async def _answer(self, msg: Msg) -> None:
        started, message_type, outcome, error_type = perf_counter(), "", "ack", ""
        try:
            request = self._codec.decode(msg.data)
            message_type = type(request).__wire_name__
            reply = await self._handler(request)
            if reply is not None and msg.reply:
                await msg.respond(self._codec.encode(reply))
        except DeserializationError as exc:
            outcome, error_type = "dead", type(exc).__name__
            logger.warning("request on %s could not be decoded; not answered: %s", self._topic, exc)
        except Exception as exc:  # the requester times out; the server keeps serving
            outcome, error_type = "dead", type(exc).__name__
            logger.error("request on %s failed: %s", self._topic, exc)
        finally:
            # Counted like a delivery off the stream, so /metrics shows natively served requests.
            if telemetry.metrics is not None:
                seconds = perf_counter() - started
                telemetry.metrics.processed(
                    "nats", self._topic, self._group, message_type, outcome, seconds, error_type
                )

    async def cancel(self) -> None:
        if self.subscription is not None:
            await self.subscription.unsubscribe()
            self.subscription = None
        if self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)
