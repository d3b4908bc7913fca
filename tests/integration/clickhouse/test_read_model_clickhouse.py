"""ReadModel, checkpoint and snapshot contracts on chdb and on a private ClickHouse server."""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from pydantic import BaseModel

from bento.adapters.clickhouse.checkpoint_store import ClickHouseCheckpointStore
from bento.adapters.clickhouse.engine import ClickHouseEngine
from bento.adapters.clickhouse.read_model import ClickHouseReadModel
from bento.adapters.clickhouse.snapshot_store import ClickHouseSnapshotStore
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.read_model import RebuildableReadModel
from bento.application.ports.snapshot_store import SnapshotStore
from bento.testing.contracts.checkpoint_store import CheckpointStoreContract
from bento.testing.contracts.read_model import ContractRecord, ReadModelContract, RebuildableReadModelContract
from bento.testing.contracts.snapshot_store import SnapshotStoreContract

ENGINES = ["embedded", "server"]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> ClickHouseEngine:
    found: ClickHouseEngine = request.getfixturevalue(f"{request.param}_engine")
    return found


class TestClickHouseReadModel(ReadModelContract):
    @pytest.fixture
    async def read_model(
        self, engine: ClickHouseEngine, table_name: str
    ) -> AsyncIterator[RebuildableReadModel[ContractRecord]]:
        async with ClickHouseReadModel(engine, ContractRecord, table=table_name) as model:
            yield model
        await model.drop_shadow()
        await engine.execute(f"DROP TABLE IF EXISTS {model.qualified}")


class TestClickHouseReadModelRebuilds(RebuildableReadModelContract):
    """The optional shadow/promote extension: EXCHANGE on chdb, one RENAME on 18.16."""

    read_model = TestClickHouseReadModel.read_model


class TestClickHouseCheckpointStore(CheckpointStoreContract):
    @pytest.fixture
    async def checkpoints(self, engine: ClickHouseEngine) -> AsyncIterator[CheckpointStore]:
        async with ClickHouseCheckpointStore(engine) as store:
            yield store


class TestClickHouseSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    async def snapshots(self, engine: ClickHouseEngine) -> AsyncIterator[SnapshotStore]:
        async with ClickHouseSnapshotStore(engine) as store:
            yield store


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Rank(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Wide(BaseModel):
    """Every supported field type, to check the mapping round-trips on both engines."""

    id: str
    name: str = ""
    count: int = 0
    ratio: float = 0.0
    active: bool = False
    seen_at: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    day: date = date(2000, 1, 1)
    colour: Colour = Colour.RED
    rank: Rank = Rank.LOW
    ref: uuid.UUID | None = None
    note: str | None = None
    amount: int | None = None
    tags: list[str] = []
    extra: dict[str, int] = {}


async def test_field_types_round_trip_and_filter(engine: ClickHouseEngine, table_name: str) -> None:
    async with ClickHouseReadModel(engine, Wide, table=table_name) as model:
        first = Wide(
            id="w1",
            name="é✓ 'quoted' \\ back",
            count=-(2**40),
            ratio=0.125,
            active=True,
            seen_at=datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC),
            day=date(2026, 3, 4),
            colour=Colour.BLUE,
            rank=Rank.HIGH,
            ref=uuid.uuid4(),
            note=None,
            amount=7,
            tags=["a", "b"],
            extra={"x": 1},
        )
        second = Wide(id="w2")
        await model.write_batch([(first, 1), (second, 1)], [])
        assert await model.get("w1") == first
        assert await model.get("w2") == second
        assert [r.id for r in await model.find({"colour": Colour.BLUE})] == ["w1"]
        assert [r.id for r in await model.find({"active": True, "rank": Rank.HIGH})] == ["w1"]
        assert [r.id for r in await model.find({"note": None})] == ["w1", "w2"]
        assert await model.count({"seen_at": first.seen_at}) == 1
        assert [r.id for r in await model.find(order_by="seen_at", descending=True)] == ["w1", "w2"]
        with pytest.raises(ValueError, match="no field"):
            await model.find({"missing": 1})


async def test_a_new_field_adds_a_column(engine: ClickHouseEngine, table_name: str) -> None:
    class Before(BaseModel):
        id: str
        name: str

    class After(BaseModel):
        id: str
        name: str
        score: int = 0

    async with ClickHouseReadModel(engine, Before, table=table_name) as before:
        await before.upsert(Before(id="a", name="ann"), version=1)
    async with ClickHouseReadModel(engine, After, table=table_name) as after:
        assert await after.get("a") == After(id="a", name="ann", score=0)
        await after.upsert(After(id="a", name="ann", score=3), version=2)
        assert await after.count({"score": 3}) == 1
