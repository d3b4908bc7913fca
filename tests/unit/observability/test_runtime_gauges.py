"""The runtime gauges what it starts: the relay, each projection, each group subscription."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from dependency_injector import providers

from bento import DomainEvent, EventHandler, Projection
from bento.application import gauges
from bento.infrastructure.container import BentoContainer, shutdown
from bento.infrastructure.settings import BentoSettings


@pytest.fixture(autouse=True)
def _no_config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


class Shelved(DomainEvent, name="test.gauges.shelved"):
    n: int


class OnShelved(EventHandler[Shelved]):
    async def handle(self, event: Shelved) -> None:
        pass


class Shelves(Projection, name="test.gauges.shelves"):
    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def on_Shelved(self, event: Shelved) -> None:
        await self.gate.wait()


class GaugedContainer(BentoContainer):
    on_shelved = providers.Singleton(OnShelved)
    shelves = providers.Singleton(Shelves)


async def test_the_runtime_samples_its_pieces_every_interval() -> None:
    container = GaugedContainer()
    settings = BentoSettings(service={"name": "gauged"}, telemetry={"gauge_interval": 0.05})  # type: ignore[arg-type]
    container.settings.override(providers.Object(settings))
    runtime = await container.runtime()
    try:
        store = await container.event_store()
        for n in range(3):
            await store.append(f"shelf-{n}", [Shelved(n=n)], 0)
        wanted = {
            (gauges.OUTBOX_LAG, (("bento.outbox.name", "gauged.outbox"),)),
            (gauges.PROJECTION_LAG, (("bento.projection.name", "test.gauges.shelves"),)),
        }
        subscription = (
            ("messaging.system", "inprocess"),
            ("messaging.destination.name", "test.gauges.shelved"),
            ("messaging.consumer.group.name", "gauged.OnShelved"),
        )
        wanted |= {(gauges.CONSUMER_BACKLOG, subscription), (gauges.DLQ_DEPTH, subscription)}

        async def reach(values: dict[tuple[str, tuple[tuple[str, str], ...]], int]) -> None:
            for _ in range(200):  # never refreshed by hand: the runtime's loop does it
                if {(r.name, r.attributes): r.value for r in runtime.gauges.readings()} == values:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"gauges never reached {values}: {runtime.gauges.readings()}")

        lag = (gauges.PROJECTION_LAG, (("bento.projection.name", "test.gauges.shelves"),))
        await reach({**dict.fromkeys(wanted, 0), lag: 3})  # the projection is held on its first event
        container.shelves().gate.set()
        await reach(dict.fromkeys(wanted, 0))
        assert runtime.gauges.refreshed_at > 0
    finally:
        await shutdown(container)
