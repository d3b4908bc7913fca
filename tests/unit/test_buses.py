import asyncio
import logging

import pytest

from bento import (
    Command,
    CommandBus,
    CommandHandler,
    DomainEvent,
    EventBus,
    EventHandler,
    HandlerAlreadyRegisteredError,
    HandlerNotFoundError,
    Query,
    QueryBus,
    QueryHandler,
    RetryPolicy,
)


class Register(Command):
    name: str


class GetGreeting(Query):
    name: str


class Registered(DomainEvent, name="test.buses.registered"):
    name: str


class Welcomed(DomainEvent, name="test.buses.welcomed"):
    name: str


class RegisterHandler(CommandHandler[Register, str]):
    def __init__(self, events: EventBus) -> None:
        self.events = events

    async def handle(self, command: Register) -> str:
        await self.events.publish(Registered(name=command.name))
        return f"registered {command.name}"


class GreetingHandler(QueryHandler[GetGreeting, str]):
    async def handle(self, query: GetGreeting) -> str:
        return f"hello {query.name}"


async def test_dispatch_runs_the_one_handler_and_returns_its_result() -> None:
    events = EventBus()
    bus = CommandBus()
    bus.register(RegisterHandler(events))
    assert await bus.dispatch(Register(name="ann")) == "registered ann"


async def test_query_bus_answers() -> None:
    bus = QueryBus()
    bus.register(GreetingHandler())
    assert await bus.ask(GetGreeting(name="bob")) == "hello bob"


async def test_no_handler_is_a_typed_error_naming_the_type() -> None:
    with pytest.raises(HandlerNotFoundError, match="Register"):
        await CommandBus().dispatch(Register(name="x"))
    with pytest.raises(HandlerNotFoundError, match="GetGreeting"):
        await QueryBus().ask(GetGreeting(name="x"))


async def test_a_second_handler_for_one_command_is_refused() -> None:
    bus = CommandBus()
    bus.register(RegisterHandler(EventBus()))
    with pytest.raises(HandlerAlreadyRegisteredError):
        bus.register(RegisterHandler(EventBus()))


async def test_plain_functions_register_with_an_explicit_type() -> None:
    bus = CommandBus(middleware=[])

    async def handle(command: Register) -> int:
        return len(command.name)

    bus.register(handle, Register)
    assert await bus.dispatch(Register(name="abc")) == 3
    with pytest.raises(TypeError):
        bus.register(handle)


async def test_correlation_and_causation_propagate_through_handlers_and_chains() -> None:
    events = EventBus()
    seen: list[DomainEvent] = []

    @events.subscribe(Registered)
    async def welcome(event: Registered) -> None:
        seen.append(event)
        await events.publish(Welcomed(name=event.name))  # an event chain

    @events.subscribe(Welcomed)
    async def record(event: Welcomed) -> None:
        seen.append(event)

    bus = CommandBus()
    bus.register(RegisterHandler(events))
    command = Register(name="ann")
    await bus.dispatch(command)
    registered, welcomed = seen
    assert registered.metadata.correlation_id == command.message_id
    assert registered.metadata.causation_id == command.message_id
    assert welcomed.metadata.correlation_id == command.message_id
    assert welcomed.metadata.causation_id == registered.message_id


async def test_every_subscriber_runs_even_when_one_fails_and_the_failure_is_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = EventBus(retry_policy=RetryPolicy(max_attempts=3, delays=(0.01,)))
    calls: list[str] = []
    flaky_attempts = 0

    @events.subscribe(Registered)
    async def flaky(event: Registered) -> None:
        nonlocal flaky_attempts
        flaky_attempts += 1
        if flaky_attempts < 3:
            raise RuntimeError("smtp down")
        calls.append("flaky")

    @events.subscribe(Registered)
    async def steady(event: Registered) -> None:
        calls.append("steady")

    event = Registered(name="x")
    with caplog.at_level(logging.WARNING):
        await events.publish(event)
        assert calls == ["steady"]
        await events.drain(timeout=2)
    assert calls == ["steady", "flaky"] and flaky_attempts == 3
    assert event.message_id in caplog.text and "smtp down" in caplog.text
    assert events.failed == []


async def test_a_subscriber_that_always_fails_ends_in_failed_deliveries() -> None:
    events = EventBus(retry_policy=RetryPolicy(max_attempts=2, delays=(0.01,)))

    @events.subscribe(Registered)
    async def broken(event: Registered) -> None:
        raise ValueError("bad data")

    event = Registered(name="x")
    await events.publish(event)
    await events.drain(timeout=2)
    (failure,) = events.failed
    assert (failure.event, failure.error_type, failure.attempts) == (event, "ValueError", 2)


async def test_event_handler_classes_and_base_type_subscriptions() -> None:
    events = EventBus()
    got: list[str] = []

    class OnRegistered(EventHandler[Registered]):
        async def handle(self, event: Registered) -> None:
            got.append(f"class:{event.name}")

    @events.subscribe(DomainEvent)
    async def audit(event: DomainEvent) -> None:
        got.append(f"audit:{type(event).__name__}")

    events.register(OnRegistered())
    await events.publish(Registered(name="a"), Welcomed(name="b"))
    assert got == ["audit:Registered", "class:a", "audit:Welcomed"]


async def test_middleware_is_composed_once_in_order() -> None:
    order: list[str] = []

    class Tag:
        def __init__(self, name: str) -> None:
            self.name = name

        async def __call__(self, message, call_next):  # type: ignore[no-untyped-def]
            order.append(self.name)
            return await call_next(message)

    bus = CommandBus(middleware=[Tag("outer"), Tag("inner")])
    bus.register(RegisterHandler(EventBus()))
    await bus.dispatch(Register(name="a"))
    assert order == ["outer", "inner"]


async def test_close_waits_for_pending_retries() -> None:
    events = EventBus(retry_policy=RetryPolicy(max_attempts=2, delays=(0.05,)))
    done = asyncio.Event()
    attempts = 0

    @events.subscribe(Registered)
    async def second_time_lucky(event: Registered) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("first")
        done.set()

    await events.publish(Registered(name="x"))
    await events.close(timeout=2)
    assert done.is_set()
