"""ReadModelContract. Subclasses provide a `read_model` fixture: an empty ReadModelPort
of `ContractRecord` (defined here)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict

from bento.application.ports.read_model import ReadModelPort


class ContractRecord(BaseModel):
    """The record type the contract writes."""

    model_config = ConfigDict(frozen=True)

    id: str
    customer: str
    status: str = "new"
    total: float = 0.0
    items: int = 0


class ReadModelContract:
    async def test_upsert_then_get(self, read_model: ReadModelPort[ContractRecord]) -> None:
        record = ContractRecord(id="o-1", customer="ann", total=12.5, items=2)
        await read_model.upsert(record, version=1)
        assert await read_model.get("o-1") == record
        assert await read_model.get("missing") is None

    async def test_newer_version_wins_and_older_is_ignored(self, read_model: ReadModelPort[ContractRecord]) -> None:
        await read_model.upsert(ContractRecord(id="o-1", customer="ann", status="paid"), version=5)
        await read_model.upsert(ContractRecord(id="o-1", customer="ann", status="new"), version=3)
        got = await read_model.get("o-1")
        assert got is not None and got.status == "paid"
        await read_model.upsert(ContractRecord(id="o-1", customer="ann", status="shipped"), version=6)
        got = await read_model.get("o-1")
        assert got is not None and got.status == "shipped"
        assert await read_model.count() == 1

    async def test_replaying_the_same_version_is_idempotent(self, read_model: ReadModelPort[ContractRecord]) -> None:
        record = ContractRecord(id="o-1", customer="ann", items=1)
        for _ in range(3):
            await read_model.upsert(record, version=1)
        assert await read_model.count() == 1
        assert await read_model.get("o-1") == record

    async def test_find_and_count_filter_by_equality(self, read_model: ReadModelPort[ContractRecord]) -> None:
        for n in range(10):
            status = "paid" if n % 2 else "new"
            customer = "ann" if n < 5 else "bob"
            await read_model.upsert(ContractRecord(id=f"o-{n}", customer=customer, status=status, total=n), version=1)
        assert await read_model.count() == 10
        assert await read_model.count({"status": "paid"}) == 5
        assert await read_model.count({"status": "paid", "customer": "ann"}) == 2
        paid = await read_model.find({"status": "paid"}, order_by="total", descending=True)
        assert [r.id for r in paid] == ["o-9", "o-7", "o-5", "o-3", "o-1"]
        page = await read_model.find(order_by="total", limit=3, offset=2)
        assert [r.id for r in page] == ["o-2", "o-3", "o-4"]

    async def test_delete_leaves_a_tombstone_older_writes_cannot_undo(
        self, read_model: ReadModelPort[ContractRecord]
    ) -> None:
        await read_model.upsert(ContractRecord(id="o-1", customer="ann"), version=1)
        await read_model.delete("o-1", version=2)
        assert await read_model.get("o-1") is None
        assert await read_model.count() == 0
        await read_model.upsert(ContractRecord(id="o-1", customer="ann"), version=1)
        assert await read_model.get("o-1") is None
        await read_model.upsert(ContractRecord(id="o-1", customer="ann", status="again"), version=3)
        got = await read_model.get("o-1")
        assert got is not None and got.status == "again"

    async def test_clear_empties_the_table(self, read_model: ReadModelPort[ContractRecord]) -> None:
        await asyncio.gather(
            *(read_model.upsert(ContractRecord(id=f"o-{n}", customer="c"), version=1) for n in range(5))
        )
        await read_model.clear()
        assert await read_model.count() == 0
        assert await read_model.find() == []
