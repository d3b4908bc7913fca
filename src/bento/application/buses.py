"""In-process CommandBus, QueryBus and EventBus.

Middleware is composed when a handler is registered, so `dispatch` is a dict
look-up and one await (plus one attribute test: with tracing on, an INTERNAL
`dispatch <wire name>` or `ask <wire name>` span runs around the handler).
Event subscribers run in registration order; one failing subscriber never stops the
others: its failure is logged with the event id and retried in the background per the
RetryPolicy, and after the last attempt the delivery is kept in `EventBus.failed`
(nothing is silently dropped).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bento.application import telemetry
from bento.application.errors import HandlerAlreadyRegisteredError, HandlerNotFoundError
from bento.application.handlers import CommandHandler, EventHandler, QueryHandler
from bento.application.messages import Command, Query
from bento.application.middleware import Call, Middleware, compose, default_middleware
from bento.application.retry import RetryPolicy
from bento.domain.events import DomainEvent
from bento.domain.metadata import current_message

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=DomainEvent)
EventFunction = Callable[[E], Awaitable[None]]


class _SingleHandlerBus:
    """Shared machinery of CommandBus and QueryBus: one handler per message type."""

    _kind = "message"

    def __init__(self, middleware: Sequence[Middleware] | None = None) -> None:
        self._middleware = list(default_middleware() if middleware is None else middleware)
        self._handlers: dict[type[Any], Call] = {}
        self._owners: dict[type[Any], object] = {}

    def _register(self, message_type: type[Any], handler: Call, owner: object) -> None:
        if message_type in self._handlers:
            raise HandlerAlreadyRegisteredError(message_type, self._owners[message_type])
        self._handlers[message_type] = compose(handler, self._middleware) if self._middleware else handler
        self._owners[message_type] = owner

    def handles(self, message_type: type[Any]) -> bool:
        return message_type in self._handlers

    @property
    def registered(self) -> dict[type[Any], object]:
        return dict(self._owners)


class CommandBus(_SingleHandlerBus):
    """Runs the one handler of a command and returns its result."""

    def register(
        self,
        handler: CommandHandler[Any, Any] | Callable[[Any], Awaitable[Any]],
        command_type: type[Command] | None = None,
    ) -> None:
        message_type = command_type or _declared_type(handler)
        self._register(message_type, _entry_point(handler), handler)

    async def dispatch(self, command: Command) -> Any:
        try:
            handler = self._handlers[type(command)]
        except KeyError:
            raise HandlerNotFoundError(type(command)) from None
        if telemetry.tracer is None:
            return await handler(command)
        return await traced_call(handler, command, "dispatch")

    async def send(self, command: Command) -> None:
        """Run `command` for its effect, discarding the result. In-process this is `dispatch`;
        a remote bus (`bento.application.remote`) enqueues it without waiting."""
        await self.dispatch(command)


class QueryBus(_SingleHandlerBus):
    """Answers a query with its one handler."""

    def register(
        self,
        handler: QueryHandler[Any, Any] | Callable[[Any], Awaitable[Any]],
        query_type: type[Query] | None = None,
    ) -> None:
        message_type = query_type or _declared_type(handler)
        self._register(message_type, _entry_point(handler), handler)

    async def ask(self, query: Query) -> Any:
        try:
            handler = self._handlers[type(query)]
        except KeyError:
            raise HandlerNotFoundError(type(query)) from None
        if telemetry.tracer is None:
            return await handler(query)
        return await traced_call(handler, query, "ask")


async def traced_call(handler: Call, message: Command | Query, operation: str) -> Any:
    """Run an in-process handler inside an INTERNAL `<operation> <wire name>` span. The handler
    gets the message with the span's context as its trace context, so what it stores and
    publishes is parented on the span (call only with tracing on)."""
    name = type(message).__wire_name__
    with telemetry.span(f"{operation} {name}", "INTERNAL", telemetry.message_attributes(message, operation)):
        return await handler(message.with_metadata(trace_context=telemetry.inject()))


def _entry_point(handler: Any) -> Call:
    # Register the bound `handle` of handler classes: one coroutine frame less per dispatch.
    if isinstance(handler, CommandHandler | QueryHandler | EventHandler):
        entry: Call = handler.handle
        return entry
    return handler  # type: ignore[no-any-return]


def _declared_type(handler: object) -> type[Any]:
    handled = getattr(handler, "handled_type", None)
    if handled is None:
        raise TypeError(
            f"cannot tell which message {handler!r} handles: pass the message type, or subclass "
            "CommandHandler[...] / QueryHandler[...]"
        )
    declared: type[Any] = handled()
    return declared


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One registered event subscriber: the composed call and a name for logs/queues."""

    event_type: type[DomainEvent]
    name: str
    call: Call
    raw: Callable[[Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """An event a subscriber could not handle after every attempt."""

    event: DomainEvent
    subscriber: str
    error_type: str
    error_message: str
    attempts: int


class EventBus:
    """Fans each published event out to every subscriber of its type (or a base type)."""

    def __init__(
        self, *, retry_policy: RetryPolicy | None = None, middleware: Sequence[Middleware] | None = None
    ) -> None:
        self.retry_policy = retry_policy or RetryPolicy(max_attempts=3, delays=(0.1, 1.0))
        # Correlation is set once per event in publish(), so only the rest of the chain applies.
        chain = list(default_middleware()[1:] if middleware is None else middleware)
        self._middleware = chain
        self._subscribers: list[Subscriber] = []
        self._by_type: dict[type[DomainEvent], tuple[Subscriber, ...]] = {}
        self._retries: set[asyncio.Task[None]] = set()
        self.failed: list[FailedDelivery] = []
        self._forward: Callable[..., Awaitable[None]] | None = None

    def forward_to(self, publish: Callable[..., Awaitable[None]] | None) -> None:
        """Send published events to `publish` (an EventPublisherPort's, e.g. a broker's)
        instead of running the subscribers here: they then consume from the broker, one
        group each, with its retries and dead letters. None restores in-process delivery."""
        self._forward = publish

    # -- registration ---------------------------------------------------------------------
    def subscribe(self, event_type: type[E]) -> Callable[[EventFunction[E]], EventFunction[E]]:
        """Decorator for functions: `@bus.subscribe(OrderCreatedEvent)`."""

        def register(fn: EventFunction[E]) -> EventFunction[E]:
            self.add_subscriber(event_type, fn, name=getattr(fn, "__qualname__", repr(fn)))
            return fn

        return register

    def register(self, handler: EventHandler[Any]) -> None:
        self.add_subscriber(handler.handled_type(), _entry_point(handler), name=handler.handler_name)

    def add_subscriber(self, event_type: type[DomainEvent], fn: Callable[[Any], Awaitable[None]], *, name: str) -> None:
        call = compose(fn, self._middleware) if self._middleware else fn
        self._subscribers.append(Subscriber(event_type, name, call, fn))
        self._by_type.clear()

    @property
    def subscribers(self) -> list[Subscriber]:
        return list(self._subscribers)

    def subscribers_of(self, event_type: type[DomainEvent]) -> tuple[Subscriber, ...]:
        found = self._by_type.get(event_type)
        if found is None:
            found = tuple(s for s in self._subscribers if issubclass(event_type, s.event_type))
            self._by_type[event_type] = found
        return found

    # -- publishing -----------------------------------------------------------------------
    async def publish(self, *events: DomainEvent) -> None:
        """Run every subscriber of every event; returns when each had its first attempt.
        When forwarding (`forward_to`), returns once the broker accepted the events."""
        if self._forward is not None:
            await self._forward(*events)
            return
        by_type = self._by_type
        for event in events:
            subscribers = by_type.get(type(event)) or self.subscribers_of(type(event))
            token = current_message.set(event)
            try:
                for subscriber in subscribers:
                    try:
                        await subscriber.call(event)
                    except Exception as exc:
                        self._first_failure(subscriber, event, exc)
            finally:
                current_message.reset(token)

    def _first_failure(self, subscriber: Subscriber, event: DomainEvent, exc: Exception) -> None:
        logger.warning(
            "subscriber %s failed for %s %s (attempt 1 of %d): %s",
            subscriber.name,
            type(event).__name__,
            event.message_id,
            self.retry_policy.max_attempts,
            exc,
        )
        if self.retry_policy.gives_up_after(1):
            self._give_up(subscriber, event, exc, 1)
            return
        task = asyncio.get_running_loop().create_task(self._retry(subscriber, event))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _retry(self, subscriber: Subscriber, event: DomainEvent) -> None:
        attempt = 1
        while True:
            await asyncio.sleep(self.retry_policy.delay_after(attempt))
            attempt += 1
            token = current_message.set(event)
            try:
                await subscriber.call(event)
                return
            except asyncio.CancelledError:
                self._give_up(subscriber, event, RuntimeError("retry cancelled at shutdown"), attempt)
                raise
            except Exception as exc:
                if self.retry_policy.gives_up_after(attempt):
                    self._give_up(subscriber, event, exc, attempt)
                    return
                logger.warning(
                    "subscriber %s failed for %s (attempt %d of %d): %s",
                    subscriber.name,
                    event.message_id,
                    attempt,
                    self.retry_policy.max_attempts,
                    exc,
                )
            finally:
                current_message.reset(token)

    def _give_up(self, subscriber: Subscriber, event: DomainEvent, exc: Exception, attempts: int) -> None:
        logger.error(
            "subscriber %s gave up on %s %s after %d attempt(s): %s",
            subscriber.name,
            type(event).__name__,
            event.message_id,
            attempts,
            exc,
        )
        self.failed.append(FailedDelivery(event, subscriber.name, type(exc).__name__, str(exc), attempts))

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for background retries to finish (call before shutdown or in tests)."""
        async with asyncio.timeout(timeout):
            while self._retries:
                await asyncio.gather(*list(self._retries), return_exceptions=True)

    async def close(self, timeout: float = 10.0) -> None:
        try:
            await self.drain(timeout)
        except TimeoutError:
            for task in self._retries:
                task.cancel()
            logger.error("event bus closed with %d retries unfinished", len(self._retries))
