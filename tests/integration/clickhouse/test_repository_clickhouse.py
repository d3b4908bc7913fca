"""EventSourcedRepository on the ClickHouse event store with snapshots in ClickHouse."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest

from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.clickhouse.event_store import ClickHouseEventStore
from bento.adapters.clickhouse.snapshot_store import ClickHouseSnapshotStore
from bento.application.errors import ConcurrencyError
from bento.application.repository import EventSourcedRepository
from bento.domain.aggregate import AggregateRoot
from bento.testing.events import ContractEvent, make_event


class Tally(AggregateRoot):
    aggregate_type: ClassVar[str] = "Tally"
    total: int = 0

    def add(self, n: int) -> None:
        self.record(make_event(n, key=self.id))

    def apply_ContractEvent(self, event: ContractEvent) -> None:
        self.total += event.seq

    def snapshot_state(self) -> dict[str, Any]:
        return {"total": self.total}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.total = state["total"]


@pytest.fixture(params=["embedded", "server"])
def engine(request: pytest.FixtureRequest) -> ClickHouseEngine:
    found: ClickHouseEngine = request.getfixturevalue(f"{request.param}_engine")
    return found


async def test_snapshots_in_clickhouse_and_optimistic_concurrency(engine: ClickHouseEngine) -> None:
    suffix = uuid.uuid4().hex[:10]
    async with (
        ClickHouseEventStore(engine, single_writer=True, table=f"ev_{suffix}") as store,
        ClickHouseSnapshotStore(engine, table=f"snap_{suffix}") as snapshots,
    ):
        repo = EventSourcedRepository(Tally, store, snapshots=snapshots, snapshot_every=10)
        tally = Tally.from_history("t1", ())
        for n in range(1, 26):
            tally.add(n)
            if n % 4 == 0:
                await repo.save(tally)
        await repo.save(tally)
        snapshot = await snapshots.load("Tally-t1")
        assert snapshot is not None and snapshot.version == 20 and snapshot.state == {"total": sum(range(1, 21))}
        loaded = await repo.load("t1")
        assert (loaded.version, loaded.total) == (25, sum(range(1, 26)))
        plain = await EventSourcedRepository(Tally, store).load("t1")
        assert (plain.version, plain.total) == (loaded.version, loaded.total)

        stale = await repo.load("t1")
        loaded.add(100)
        await repo.save(loaded)
        stale.add(200)
        with pytest.raises(ConcurrencyError):
            await repo.save(stale)
        assert (await repo.load("t1")).total == sum(range(1, 26)) + 100
