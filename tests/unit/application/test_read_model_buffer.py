"""ReadModelBuffer: writes coalesce per id, reads see them, flush writes once."""

from __future__ import annotations

from collections.abc import Sequence

from bento.adapters.memory.read_model import InMemoryReadModel
from bento.application.read_model_buffer import ReadModelBuffer
from bento.testing.contracts.read_model import ContractRecord


class BatchingReadModel(InMemoryReadModel[ContractRecord]):
    """An in-memory model that also offers write_batch, and counts the calls."""

    def __init__(self) -> None:
        super().__init__(ContractRecord)
        self.batches = 0

    async def write_batch(
        self, upserts: Sequence[tuple[ContractRecord, int]], deletes: Sequence[tuple[str, int]]
    ) -> None:
        self.batches += 1
        for record, version in upserts:
            await self.upsert(record, version=version)
        for key, version in deletes:
            await self.delete(key, version=version)


async def test_buffered_writes_are_visible_and_coalesced() -> None:
    target = BatchingReadModel()
    buffer = ReadModelBuffer(target)
    for v in range(1, 6):
        await buffer.upsert(ContractRecord(id="a", customer="ann", items=v), version=v)
    await buffer.upsert(ContractRecord(id="a", customer="old"), version=2)  # older: ignored
    await buffer.upsert(ContractRecord(id="b", customer="bob"), version=1)
    await buffer.delete("b", version=2)
    assert buffer.pending == 2
    got = await buffer.get("a")
    assert got is not None and got.items == 5
    assert await buffer.get("b") is None
    assert await target.count() == 0
    assert await buffer.flush() == 2 and target.batches == 1
    got = await target.get("a")
    assert got is not None and got.items == 5
    assert await buffer.flush() == 0 and target.batches == 1


async def test_find_and_count_flush_first_and_plain_models_get_single_writes() -> None:
    target = InMemoryReadModel(ContractRecord)
    buffer = ReadModelBuffer(target)
    await buffer.upsert(ContractRecord(id="a", customer="ann"), version=1)
    assert await buffer.count() == 1
    assert [r.id for r in await buffer.find()] == ["a"]
    await buffer.upsert(ContractRecord(id="c", customer="cy"), version=1)
    buffer.discard()
    await buffer.clear()
    assert await target.count() == 0
