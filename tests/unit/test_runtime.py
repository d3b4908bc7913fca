"""The container wires the runtime: command buses by settings, one call to start and stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from dependency_injector import providers

from bento import Command, CommandHandler, DomainEvent, EventBus, EventHandler
from bento.application.buses import CommandBus, QueryBus
from bento.application.remote import RemoteCommandBus, RemoteQueryBus
from bento.infrastructure.container import BentoContainer, shutdown
from bento.infrastructure.settings import BentoSettings


@pytest.fixture(autouse=True)
def _no_config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


class RuntimeTicked(DomainEvent, name="test.runtime.ticked"):
    n: int


class Tick(Command, name="test.runtime.tick"):
    n: int


class TickHandler(CommandHandler[Tick, int]):
    def __init__(self, events: EventBus) -> None:
        self.events = events

    async def handle(self, command: Tick) -> int:
        await self.events.publish(RuntimeTicked(n=command.n))
        return command.n * 2


class Seen:
    def __init__(self) -> None:
        self.events: list[RuntimeTicked] = []


class OnTicked(EventHandler[RuntimeTicked]):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def handle(self, event: RuntimeTicked) -> None:
        self.seen.events.append(event)


class TickContainer(BentoContainer):
    seen = providers.Singleton(Seen)
    tick = providers.Singleton(TickHandler, BentoContainer.event_bus)
    on_ticked = providers.Singleton(OnTicked, seen)


def _container(**settings: object) -> TickContainer:
    container = TickContainer()
    container.settings.override(providers.Object(BentoSettings(**settings)))  # type: ignore[arg-type]
    return container


async def test_shutdown_resources_can_be_awaited_when_nothing_async_was_opened() -> None:
    container = BentoContainer()
    container.command_bus()  # a Singleton only
    await container.shutdown_resources()  # raised TypeError: NoneType can't be used in 'await'
    await shutdown(container)
    container.shutdown_resources()  # and calling it without await is harmless


def test_in_process_is_the_default_and_a_broker_selects_the_remote_buses(monkeypatch: pytest.MonkeyPatch) -> None:
    default = BentoContainer()
    assert type(default.command_bus()) is CommandBus and type(default.query_bus()) is QueryBus
    monkeypatch.setenv("COMMAND__URL", "amqp://guest:guest@127.0.0.1:5672/")  # URL-scheme inference
    monkeypatch.setenv("COMMAND__REQUEST_TIMEOUT", "2.5")
    remote = BentoContainer()
    bus = remote.command_bus()
    assert isinstance(bus, RemoteCommandBus) and isinstance(remote.query_bus(), RemoteQueryBus)
    assert bus.link.timeout == 2.5 and bus.link is remote.query_bus().link  # type: ignore[attr-defined]


def test_a_bad_command_backend_is_one_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMAND__BACKEND", "carrier-pigeon")
    with pytest.raises(ValueError, match=r"COMMAND__(DEFAULT__)?BACKEND"):
        BentoContainer().settings()


async def test_the_runtime_starts_and_stops_every_piece_in_one_call() -> None:
    container = _container()
    runtime = await container.runtime()
    assert runtime.started
    lines = "\n".join(runtime.lines)
    assert "subscription: topic test.runtime.ticked group bento-service.OnTicked" in lines
    assert "outbox relay: InMemoryEventStore -> InProcessMessageBus" in lines
    assert await container.command_bus().dispatch(Tick(n=4)) == 8
    await asyncio.sleep(0.05)
    assert [e.n for e in container.seen().events] == [4]
    await container.shutdown_resources()
    assert not runtime.started and runtime.subscriptions == []


async def test_with_a_broker_event_bus_publish_goes_through_the_broker_once_per_subscriber() -> None:
    from bento.adapters.memory.settings import InProcessSettings

    events = EventBus()
    forwarded: list[DomainEvent] = []

    async def publish(*batch: DomainEvent) -> None:
        forwarded.extend(batch)

    events.forward_to(publish)
    got: list[DomainEvent] = []
    events.subscribe(RuntimeTicked)(lambda e: _append(got, e))
    await events.publish(RuntimeTicked(n=1))
    assert [e.n for e in forwarded] == [1] and got == []  # the subscriber consumes from the broker
    events.forward_to(None)
    await events.publish(RuntimeTicked(n=2))
    assert [e.n for e in got] == [2]
    assert InProcessSettings().request_timeout == 30.0


async def _append(into: list[DomainEvent], event: DomainEvent) -> None:
    into.append(event)
