"""Remote CommandBus and QueryBus: request/reply over any MessageBus.

Built on the MessageBus port alone, so every transport in the catalogue (Kafka included,
when its row lands) carries commands with no code of its own:

- A command goes to the topic of its wire name (`{prefix}{wire name}`). The service that
  registers its handler consumes that topic as ONE competing group (`{prefix}bento.handlers`
  + wire name), so exactly one instance runs each command.
- Where the adapter offers its broker's own request/reply (`bus.request_reply`, the
  RequestReplyPort: NATS core request/reply), `dispatch` and `ask` use it, one hop each way.
- Otherwise `dispatch` publishes the command to its durable topic stamped with this process's
  reply address (header `bento-reply-to`) and waits on a future keyed by the command's message
  id; replies carry `in_reply_to`. Where the adapter offers its broker's own route for replies
  (`bus.direct_reply`, the DirectReplyPort: RabbitMQ direct reply-to, a Redis stream read
  without a group) the address is that route; otherwise it is a topic private to the process
  (a broadcast subscription, created at start).
- The handler's result travels as JSON; its error as a wire name (a DomainError declared with
  `name=`) or a type name and message, rebuilt at the caller (`RemoteHandlerError` otherwise).
- `send` publishes without a reply topic: the handler's failure is raised into the transport,
  which retries and dead-letters it like an event (at-least-once).
- Metadata (correlation, causation, tenant, trace context) is part of the message, so it
  crosses unchanged. With tracing on, the caller records `dispatch|ask <topic>` (CLIENT) or
  `send <topic>` (PRODUCER) and the handler's service `handle <topic>` (SERVER, or CONSUMER
  for `send`), parented across the broker (bento.application.telemetry).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, cast

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from bento.application import telemetry
from bento.application.buses import CommandBus, QueryBus, traced_call
from bento.application.errors import (
    CommandTimeoutError,
    HandlerNotFoundError,
    MalformedReplyError,
    RemoteHandlerError,
)
from bento.application.messages import Query
from bento.application.ports.direct_reply import REPLY_TO_HEADER, DirectReplyPort, PrivateTopicDisposal
from bento.application.ports.inbox import Inbox
from bento.application.ports.message_bus import MessageBus, Subscription
from bento.application.ports.request_reply import RequestReplyPort
from bento.domain.errors import DomainError, clipped, domain_error_type
from bento.domain.events import DomainEvent
from bento.domain.wire import WireMessage

logger = logging.getLogger(__name__)

__all__ = ["REPLY_TO_HEADER", "RemoteCommandBus", "RemoteQueryBus", "Reply", "RequestReply"]

HANDLER_NOT_FOUND = "bento.handler_not_found"
HANDLER_GROUP = "bento.handlers."


class Reply(WireMessage, name="bento.reply"):
    """The answer to one dispatched command or asked query."""

    in_reply_to: str
    ok: bool
    result: Any = None
    error_type: str = ""
    error_message: str = ""
    service: str = ""


def _as_event(message: WireMessage) -> DomainEvent:
    # The transport port is typed for events; commands, queries and replies share the envelope
    # and metadata, and every adapter only encodes them with the codec.
    return cast(DomainEvent, message)


class RequestReply:
    """One process's connection to the command transport: the MessageBus (opened on first use),
    the private reply topic and the callers waiting on it. Shared by the remote CommandBus and
    QueryBus of a container."""

    def __init__(
        self,
        open_transport: Callable[[], AbstractAsyncContextManager[MessageBus]],
        *,
        service: str,
        timeout: float = 30.0,
        topic_prefix: str = "",
        system: str = "",
    ) -> None:
        self._open = open_transport
        self.service, self.timeout, self.prefix = service, timeout, topic_prefix
        #: The transport's `messaging.system` on spans (the backend name; empty: not recorded).
        self.system = system
        self._private_topic = f"{topic_prefix}bento.reply.{service}.{uuid.uuid4().hex[:12]}"
        #: Where replies to this process go: the private topic, or the adapter's direct reply address.
        self.reply_topic = self._private_topic
        self._context: AbstractAsyncContextManager[MessageBus] | None = None
        self._bus: MessageBus | None = None
        self._reply_subscription: Subscription | None = None
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._headers: dict[str, str] = {}
        self._publishing: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.stray_replies = 0
        self.redeliveries_absorbed = 0

    # -- lifecycle ------------------------------------------------------------------------
    async def transport(self) -> MessageBus:
        """The opened MessageBus (opened once, on first use)."""
        if self._bus is not None:
            return self._bus
        async with self._lock:
            if self._bus is None:
                context = self._open()
                bus = await context.__aenter__()
                self._context = context
                direct: DirectReplyPort | None = getattr(bus, "direct_reply", None)
                if direct is not None:
                    self._reply_subscription = await direct.open_replies(self._on_reply)
                    self.reply_topic = self._reply_subscription.topic
                else:
                    self.reply_topic = self._private_topic
                    self._reply_subscription = await bus.subscribe(self.reply_topic, self._on_reply)
                self._headers = {REPLY_TO_HEADER: self.reply_topic}
                self._bus = bus
        return self._bus

    @property
    def opened_transport(self) -> MessageBus | None:
        """The transport when it was opened (health checks must not open it)."""
        return self._bus

    async def close(self) -> None:
        bus, context = self._bus, self._context
        self._bus = self._context = None
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        for publishing in list(self._publishing):
            publishing.cancel()
        if self._reply_subscription is not None:
            await self._reply_subscription.cancel()
            self._reply_subscription = None
            if bus is not None and self.reply_topic == self._private_topic:
                await _dispose_reply_topic(bus, self.reply_topic)
        if bus is not None and context is not None:
            await context.__aexit__(None, None, None)

    # -- calling --------------------------------------------------------------------------
    def topic_of(self, message: WireMessage) -> str:
        return self.prefix + type(message).__wire_name__

    async def request(self, message: WireMessage, timeout: float | None) -> Any:
        if type(message).__abstract_message__:
            raise TypeError(f"{type(message).__qualname__} is abstract: brokers route by wire name")
        if telemetry.tracer is None:
            return await self._request(message, timeout)
        operation = "ask" if isinstance(message, Query) else "dispatch"
        with telemetry.span(f"{operation} {self.topic_of(message)}", "CLIENT", self._attributes(message, operation)):
            return await self._request(_in_current_trace(message), timeout)

    async def _request(self, message: WireMessage, timeout: float | None) -> Any:
        bus = await self.transport()
        limit = self.timeout if timeout is None else timeout
        native = _native(bus)
        if native is not None:
            topic = self.topic_of(message)
            try:
                answer = await native.request(topic, _as_event(message), timeout=limit)
            except TimeoutError:
                raise CommandTimeoutError(type(message).__wire_name__, topic, limit) from None
            if not isinstance(answer, Reply):
                raise MalformedReplyError(type(message).__wire_name__, f"got a {type(answer).__wire_name__}")
            return _outcome(answer, message)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self._pending[message.message_id] = future
        topic = self.topic_of(message)
        # The publish runs beside the wait: a reply proves the command arrived, so it answers the
        # call even before the broker's confirm does (RabbitMQ confirms a persistent message once
        # the worker acknowledged it, after the reply); a failed publish fails the call.
        publishing = loop.create_task(bus.publish(topic, _as_event(message), headers=self._headers))
        self._publishing.add(publishing)
        publishing.add_done_callback(functools.partial(self._published, future))
        try:
            async with asyncio.timeout(limit):
                reply = await future
        except TimeoutError:
            raise CommandTimeoutError(type(message).__wire_name__, topic, limit) from None
        finally:
            self._pending.pop(message.message_id, None)
            if not future.done() or future.cancelled() or future.exception() is not None:
                publishing.cancel()  # no answer is coming: stop resending
        return _outcome(reply, message)

    def _published(self, future: asyncio.Future[Reply], publishing: asyncio.Task[None]) -> None:
        self._publishing.discard(publishing)
        if publishing.cancelled():
            return
        error = publishing.exception()
        if error is not None and not future.done():
            future.set_exception(error)

    async def send(self, message: WireMessage) -> None:
        bus = await self.transport()
        topic = self.topic_of(message)
        if telemetry.tracer is None:
            await bus.publish(topic, _as_event(message))
            return
        with telemetry.span(f"send {topic}", "PRODUCER", self._attributes(message, "send")):
            await bus.publish(topic, _as_event(_in_current_trace(message)))

    def _attributes(self, message: WireMessage, operation: str) -> dict[str, Any]:
        attributes = telemetry.message_attributes(message, operation)
        attributes[telemetry.DESTINATION] = self.topic_of(message)
        attributes[telemetry.OPERATION_TYPE] = "send"
        if self.system:
            attributes[telemetry.SYSTEM] = self.system
        return attributes

    async def _on_reply(self, message: DomainEvent) -> None:
        reply = cast(WireMessage, message)
        if not isinstance(reply, Reply):
            logger.warning("reply topic %s got a %s; ignored", self.reply_topic, type(reply).__wire_name__)
            self.stray_replies += 1
            return
        future = self._pending.get(reply.in_reply_to)
        if future is None or future.done():
            self.stray_replies += 1  # the caller timed out, or a redelivered command replied twice
            return
        future.set_result(reply)

    # -- serving --------------------------------------------------------------------------
    async def serve(
        self, message_type: type[WireMessage], run: Callable[[Any], Any], *, inbox: Inbox | None = None
    ) -> Subscription:
        """Consume `message_type`'s topic in its competing group and answer each request."""
        bus = await self.transport()
        topic = self.prefix + message_type.__wire_name__
        group = HANDLER_GROUP + message_type.__wire_name__
        server = _Server(self, bus, run, group, inbox, message_type)
        subscription = await bus.subscribe(topic, server.handle, group=group)
        native = _native(bus)
        if native is None:
            return subscription
        # Requests arrive natively; the durable topic still carries `send` (and callers
        # without the native path).
        return _Both(subscription, await native.serve(topic, server.answer, group=group))


class _Server:
    """Runs one handler for requests off the transport and publishes the replies."""

    def __init__(
        self,
        owner: RequestReply,
        bus: MessageBus,
        run: Callable[[Any], Any],
        group: str,
        inbox: Inbox | None,
        message_type: type[WireMessage],
    ) -> None:
        self.owner, self.bus, self.run, self.group, self.inbox = owner, bus, run, group, inbox
        self.message_type = message_type
        self.redeliveries_absorbed = 0

    async def answer(self, event: DomainEvent) -> DomainEvent | None:
        """A native request: run it and return the reply (None: a redelivery already handled)."""
        message = cast(WireMessage, event)
        if self.inbox is not None and await self.inbox.is_processed(self.group, message.message_id):
            self.redeliveries_absorbed += 1
            self.owner.redeliveries_absorbed += 1
            return None
        if type(message) is not self.message_type:
            return _as_event(_error_reply(message, HandlerNotFoundError(type(message)), ""))
        reply = await self._replying(message)
        await self._mark(message)
        return _as_event(reply)

    async def _replying(self, message: WireMessage) -> Reply:
        """Run the handler for a caller waiting on the reply: its result, or its error, typed."""
        if telemetry.tracer is None:
            return await self._reply_to(message)
        with self._span(message, "SERVER"):
            return await self._reply_to(_in_current_trace(message))

    async def _reply_to(self, message: WireMessage) -> Reply:
        try:
            return _ok_reply(message, await self.run(message))
        except Exception as exc:  # the caller gets it, typed; the transport must not retry it
            return _error_reply(message, exc, self.owner.service)

    def _span(self, message: WireMessage, kind: str) -> Any:
        """`handle <topic>`: SERVER when the caller waits for the reply, CONSUMER for `send`;
        the parent is the delivery's `process` span, or the caller's context (native requests)."""
        attributes = telemetry.message_attributes(message, "handle")
        attributes[telemetry.DESTINATION] = self.owner.prefix + self.message_type.__wire_name__
        attributes[telemetry.OPERATION_TYPE] = "process"
        attributes[telemetry.CONSUMER_GROUP] = self.group
        if self.owner.system:
            attributes[telemetry.SYSTEM] = self.owner.system
        name = f"handle {attributes[telemetry.DESTINATION]}"
        return telemetry.span(name, kind, attributes, context=telemetry.parent_of(message.metadata.trace_context))

    async def handle(self, event: DomainEvent) -> None:
        message = cast(WireMessage, event)
        reply_to = message.metadata.headers.get(REPLY_TO_HEADER)
        if self.inbox is not None and await self.inbox.is_processed(self.group, message.message_id):
            logger.info("%s skips already handled %s (a redelivery)", self.group, message.message_id)
            self.redeliveries_absorbed += 1
            self.owner.redeliveries_absorbed += 1
            return
        if type(message) is not self.message_type:  # another type on this topic: refuse it, typed
            if reply_to is None:
                raise HandlerNotFoundError(type(message))
            await self.bus.publish(reply_to, _as_event(_error_reply(message, HandlerNotFoundError(type(message)), "")))
            return
        if reply_to is None:  # send(): failures go to the transport's retries and dead letters
            if telemetry.tracer is None:
                await self.run(message)
            else:
                with self._span(message, "CONSUMER"):
                    await self.run(_in_current_trace(message))
            await self._mark(message)
            return
        reply = await self._replying(message)
        await self._mark(message)
        await self.bus.publish(reply_to, _as_event(reply))

    async def _mark(self, message: WireMessage) -> None:
        if self.inbox is not None:
            await self.inbox.mark_processed(self.group, message.message_id)


def _in_current_trace(message: WireMessage) -> WireMessage:
    """`message` carrying the current span's W3C context: sent, so the native request path
    (which encodes without the traced wire encoder) carries it to the handler's span; handled,
    so what the handler creates is parented on its span."""
    return message.with_metadata(trace_context=telemetry.inject())


async def _dispose_reply_topic(bus: MessageBus, topic: str) -> None:
    """Delete this process's reply topic where the broker would keep it (best effort: a
    leftover topic is harmless, a failing close is not)."""
    if not hasattr(bus, "delete_private_topic"):
        return
    try:
        await cast(PrivateTopicDisposal, bus).delete_private_topic(topic)
    except Exception as exc:
        logger.warning("could not delete reply topic %s: %s: %s", topic, type(exc).__name__, exc)


def _native(bus: MessageBus) -> RequestReplyPort | None:
    """The adapter's own request/reply, when it offers one (see ports.request_reply)."""
    native: RequestReplyPort | None = getattr(bus, "request_reply", None)
    return native


class _Both:
    """The durable subscription and the native one of a served topic, cancelled together."""

    def __init__(self, durable: Subscription, native: Subscription) -> None:
        self._durable, self._native = durable, native

    @property
    def topic(self) -> str:
        return self._durable.topic

    @property
    def group(self) -> str | None:
        return self._durable.group

    async def cancel(self) -> None:
        await self._native.cancel()
        await self._durable.cancel()


def _reply_id(message: WireMessage) -> str:
    # Derived, not random: a reply is identified by what it answers (and a uuid4 per reply is
    # measurable on the request/reply path).
    return "reply." + message.message_id


def _ok_reply(message: WireMessage, result: Any) -> Reply:
    return Reply(
        message_id=_reply_id(message), in_reply_to=message.message_id, ok=True, result=to_jsonable_python(result)
    )


def _error_reply(message: WireMessage, exc: Exception, service: str) -> Reply:
    if isinstance(exc, HandlerNotFoundError):
        error_type = HANDLER_NOT_FOUND
    elif isinstance(exc, DomainError) and type(exc).__wire_name__:
        error_type = cast(str, type(exc).__wire_name__)
    else:
        error_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return Reply(
        message_id=_reply_id(message),
        in_reply_to=message.message_id,
        ok=False,
        error_type=error_type,
        error_message=clipped(str(exc), 4000),
        service=service,
    )


def _outcome(reply: Reply, message: WireMessage) -> Any:
    name = type(message).__wire_name__
    if reply.ok:
        result_type = getattr(type(message), "__result_type__", None)
        if result_type is None:
            return reply.result
        try:
            return TypeAdapter(result_type).validate_python(reply.result)
        except ValueError as exc:
            raise MalformedReplyError(name, str(exc)) from exc
    if not reply.error_type:
        raise MalformedReplyError(name, "an error reply names no error type")
    if reply.error_type == HANDLER_NOT_FOUND:
        raise HandlerNotFoundError(type(message))
    error_class = domain_error_type(reply.error_type)
    if error_class is not None:
        error = error_class.__new__(error_class)
        error.args = (reply.error_message,)
        raise error
    raise RemoteHandlerError(reply.error_type, reply.error_message, reply.service, command=name)


class RemoteCommandBus(CommandBus):
    """A CommandBus whose commands without a local handler run on whichever service hosts
    theirs, over `RequestReply`. Handlers registered here run locally and are served to other
    processes by `serve_all` (the runtime calls it)."""

    remote: ClassVar[bool] = True

    def __init__(self, link: RequestReply, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.link = link

    async def dispatch(self, command: Any, *, timeout: float | None = None) -> Any:
        handler = self._handlers.get(type(command))
        if handler is not None:
            return await (handler(command) if telemetry.tracer is None else traced_call(handler, command, "dispatch"))
        return await self.link.request(command, timeout)

    async def send(self, command: Any) -> None:
        """Enqueue `command` for its handler's service without waiting (at-least-once)."""
        await self.link.send(command)

    async def serve_all(self, *, inbox: Inbox | None = None) -> list[Subscription]:
        return [await self.link.serve(t, h, inbox=inbox) for t, h in self._handlers.items()]


class RemoteQueryBus(QueryBus):
    """A QueryBus that answers from another service when no local handler is registered.
    Reads are idempotent, so served queries take no inbox."""

    remote: ClassVar[bool] = True

    def __init__(self, link: RequestReply, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.link = link

    async def ask(self, query: Any, *, timeout: float | None = None) -> Any:
        handler = self._handlers.get(type(query))
        if handler is not None:
            return await (handler(query) if telemetry.tracer is None else traced_call(handler, query, "ask"))
        return await self.link.request(query, timeout)

    async def serve_all(self) -> list[Subscription]:
        return [await self.link.serve(t, h) for t, h in self._handlers.items()]
