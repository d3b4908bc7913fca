"""ReadModelContract and RebuildableReadModelContract. Subclasses provide a `read_model`
fixture: an empty ReadModelPort (a RebuildableReadModel for the second) of `ContractRecord`
(defined here)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict

from bento.application.ports.read_model import ReadModelPort, RebuildableReadModel


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


class RebuildableReadModelContract:
    """The optional shadow/promote extension (see RebuildableReadModel): what a
    zero-downtime projection rebuild relies on."""

    async def test_shadow_writes_are_invisible_until_promoted(
        self, read_model: RebuildableReadModel[ContractRecord]
    ) -> None:
        await read_model.upsert(ContractRecord(id="old", customer="ann"), version=1)
        assert not await read_model.has_shadow()
        shadow = await read_model.shadow()
        assert await read_model.has_shadow()
        assert await shadow.count() == 0
        await shadow.upsert(ContractRecord(id="new", customer="bob"), version=1)
        assert [r.id for r in await read_model.find()] == ["old"]
        assert await read_model.get("new") is None

        await read_model.promote_shadow()
        assert [r.id for r in await read_model.find()] == ["new"]
        assert await read_model.get("old") is None
        assert not await read_model.has_shadow()

    async def test_shadow_keeps_its_writes_until_dropped(
        self, read_model: RebuildableReadModel[ContractRecord]
    ) -> None:
        await (await read_model.shadow()).upsert(ContractRecord(id="half", customer="c"), version=4)
        again = await read_model.shadow()  # a resumed rebuild finds what it wrote
        assert [r.id for r in await again.find()] == ["half"]
        await read_model.drop_shadow()
        assert not await read_model.has_shadow()
        assert await (await read_model.shadow()).count() == 0
        await read_model.drop_shadow()
        await read_model.drop_shadow()  # no-op without a shadow

    async def test_a_reader_never_sees_an_empty_or_partial_version(
        self, read_model: RebuildableReadModel[ContractRecord]
    ) -> None:
        old = [ContractRecord(id=f"o-{n}", customer="old") for n in range(20)]
        new = [ContractRecord(id=f"o-{n}", customer="new") for n in range(30)]
        for record in old:
            await read_model.upsert(record, version=1)
        seen: list[tuple[int, frozenset[str]]] = []
        done, after_switch = asyncio.Event(), asyncio.Event()
        wanted = [-1]  # how many reads make "two whole reads after the switch"

        async def reader() -> None:
            while not done.is_set():
                rows = await read_model.find()
                seen.append((len(rows), frozenset(r.customer for r in rows)))
                if len(seen) == wanted[0]:
                    after_switch.set()
                await asyncio.sleep(0)

        reading = asyncio.create_task(reader())
        shadow = await read_model.shadow()
        for record in new:
            await shadow.upsert(record, version=2)
            await asyncio.sleep(0)
        await read_model.promote_shadow()
        wanted[0] = len(seen) + 2
        await asyncio.wait_for(after_switch.wait(), 10)
        done.set()
        await reading
        assert seen, "the reader never ran"
        assert set(seen) <= {(20, frozenset({"old"})), (30, frozenset({"new"}))}, set(seen)
        assert seen[0] == (20, frozenset({"old"})) and seen[-1] == (30, frozenset({"new"}))
