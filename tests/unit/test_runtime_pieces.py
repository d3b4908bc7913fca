"""Each piece the runtime hosts is a container provider a service can override; the runtime
starts them in order, stops them in reverse, and all of them before any bus or store closes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers

from bento import Command, CommandHandler, DomainEvent, EventBus, EventHandler
from bento.adapters.memory import InProcessMessageBus
from bento.application.ports.message_bus import MessageHandler, Subscription
from bento.infrastructure.container import BentoContainer, shutdown
from bento.infrastructure.hosted import START_ORDER
from bento.infrastructure.settings import BentoSettings


@pytest.fixture(autouse=True)
def _no_config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


class Shipped(DomainEvent, name="test.pieces.shipped"):
    order: str


class Ship(Command, name="test.pieces.ship"):
    order: str


class ShipHandler(CommandHandler[Ship, str]):
    def __init__(self, events: EventBus) -> None:
        self.events = events

    async def handle(self, command: Ship) -> str:
        await self.events.publish(Shipped(order=command.order))
        return command.order


class ShipContainer(BentoContainer):
    ship = providers.Singleton(ShipHandler, BentoContainer.event_bus)


class FakePiece:
    """A hosted piece that records its start and stop in a shared log."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def start(self) -> list[str]:
        self.log.append(f"start {self.name}")
        return [f"fake {self.name}"]

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


async def recording_bus(log: list[str]) -> AsyncIterator[InProcessMessageBus]:
    async with InProcessMessageBus() as bus:
        log.append("bus opened")
        yield bus
    log.append("bus closed")


def _container() -> ShipContainer:
    container = ShipContainer()
    container.settings.override(providers.Object(BentoSettings()))
    return container


async def test_an_overridden_relay_is_the_one_the_runtime_runs() -> None:
    container, log = _container(), []
    fake = FakePiece("relay", log)
    container.outbox_relay.override(providers.Object(fake))
    runtime = await container.runtime()
    assert "fake relay" in runtime.lines
    assert not any(line.startswith("outbox relay:") for line in runtime.lines)  # the real one never started
    assert runtime.pieces["outbox_relay"] is fake
    assert await container.command_bus().dispatch(Ship(order="o-1")) == "o-1"  # the other pieces still run
    await container.shutdown_resources()
    assert log == ["start relay", "stop relay"]


async def test_pieces_start_in_order_and_stop_in_reverse_before_the_bus_closes() -> None:
    container, log = _container(), []
    container.message_bus.override(providers.Resource(recording_bus, log))
    for name in START_ORDER:
        getattr(container, name).override(providers.Object(FakePiece(name, log)))
    await container.message_bus()
    runtime = await container.runtime()
    assert runtime.lines == [f"fake {name}" for name in START_ORDER]
    await container.shutdown_resources()
    assert log == [
        "bus opened",
        "start outbox_relay",
        "start projections",
        "start subscriptions",
        "start query_consumers",
        "start command_consumers",
        # command consumers stop taking messages first; the relay flushes last; then the bus closes
        "stop command_consumers",
        "stop query_consumers",
        "stop subscriptions",
        "stop projections",
        "stop outbox_relay",
        "bus closed",
    ]
    assert not runtime.started


class Broken(FakePiece):
    async def start(self) -> list[str]:
        raise RuntimeError("subscriptions cannot start")


async def test_a_piece_that_cannot_start_stops_the_ones_started_before_it() -> None:
    container, log = _container(), []
    for name in START_ORDER:
        piece = Broken(name, log) if name == "subscriptions" else FakePiece(name, log)
        getattr(container, name).override(providers.Object(piece))
    with pytest.raises(RuntimeError, match="subscriptions cannot start"):
        await container.runtime()
    # The failing piece is stopped too: it may have started part of itself (some subscriptions).
    assert log == [
        "start outbox_relay",
        "start projections",
        "stop subscriptions",
        "stop projections",
        "stop outbox_relay",
    ]
    await shutdown(container)


class OnShipped(EventHandler[Shipped]):
    async def handle(self, event: Shipped) -> None:
        return None


class ShipAndListen(ShipContainer):
    on_shipped = providers.Singleton(OnShipped)


class LoggedSubscription:
    def __init__(self, inner: Subscription, log: list[str]) -> None:
        self.inner, self.log = inner, log
        self.topic, self.group = inner.topic, inner.group

    async def cancel(self) -> None:
        await self.inner.cancel()
        self.log.append(f"cancelled {self.topic}")


class LoggingBus(InProcessMessageBus):
    """The in-process bus, logging when a subscription is cancelled."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def subscribe(self, topic: str, handler: MessageHandler, **options: Any) -> Subscription:
        return LoggedSubscription(await super().subscribe(topic, handler, **options), self.log)


async def logging_bus(log: list[str]) -> AsyncIterator[InProcessMessageBus]:
    async with LoggingBus(log) as bus:
        yield bus
    log.append("bus closed")


async def test_the_real_pieces_stop_before_the_bus_closes() -> None:
    container, log = ShipAndListen(), []
    container.settings.override(providers.Object(BentoSettings()))
    container.message_bus.override(providers.Resource(logging_bus, log))
    runtime = await container.runtime()
    assert [s.topic for s in runtime.subscriptions] == ["test.pieces.shipped"]
    await shutdown(container)
    assert log == ["cancelled test.pieces.shipped", "bus closed"]
    assert runtime.subscriptions == [] and not runtime.started
