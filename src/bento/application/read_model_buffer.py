"""ReadModelBuffer: collect a projection's writes in memory and flush them at once.

A projection catching up over a long history would otherwise send one write per
event, and a columnar database such as ClickHouse pays a round trip and a new data
part per INSERT. The buffer keeps the latest write per id (same rule as the port:
a higher or equal version replaces, a lower one is ignored), serves `get` from what
it holds (read-your-writes inside a batch), and `flush` hands everything to the
underlying read model in one `write_batch` call when the model offers it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from bento.application.ports.read_model import ReadModelPort

M = TypeVar("M", bound=BaseModel)
M_contra = TypeVar("M_contra", bound=BaseModel, contravariant=True)


class BatchWriter(Protocol[M_contra]):
    """Optional extension of ReadModelPort: many upserts and deletes in one write."""

    async def write_batch(
        self, upserts: Sequence[tuple[M_contra, int]], deletes: Sequence[tuple[str, int]]
    ) -> None: ...


class ReadModelBuffer(Generic[M]):
    """A ReadModelPort that buffers writes until `flush` (see the module docstring).

    Only the projection that owns the buffer may write through it, and `find`/`count`
    flush first so they see every write. Not shared between tasks."""

    def __init__(self, target: ReadModelPort[M]) -> None:
        self.target = target
        self._pending: dict[str, tuple[int, M | None]] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def upsert(self, record: M, *, version: int) -> None:
        self._put(str(getattr(record, "id")), version, record)  # noqa: B009 - the model is generic

    async def delete(self, id: str, *, version: int) -> None:
        self._put(id, version, None)

    def _put(self, key: str, version: int, record: M | None) -> None:
        current = self._pending.get(key)
        if current is None or version >= current[0]:
            self._pending[key] = (version, record)

    async def get(self, id: str) -> M | None:
        held = self._pending.get(id)
        if held is not None:
            return held[1]
        return await self.target.get(id)

    async def find(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[M]:
        await self.flush()
        return await self.target.find(where, order_by=order_by, descending=descending, limit=limit, offset=offset)

    async def count(self, where: Mapping[str, Any] | None = None) -> int:
        await self.flush()
        return await self.target.count(where)

    async def clear(self) -> None:
        self._pending.clear()
        await self.target.clear()

    def discard(self) -> None:
        """Drop unflushed writes (after a failed batch, before replaying it)."""
        self._pending.clear()

    async def flush(self) -> int:
        """Write everything held to the target; returns the number of records written.
        On failure the writes stay held, so a retry writes them again."""
        if not self._pending:
            return 0
        upserts: list[tuple[M, int]] = []
        deletes: list[tuple[str, int]] = []
        for key, (version, record) in self._pending.items():
            if record is None:
                deletes.append((key, version))
            else:
                upserts.append((record, version))
        batch_write = getattr(self.target, "write_batch", None)
        if batch_write is not None:
            await batch_write(upserts, deletes)
        else:
            for record, version in upserts:
                await self.target.upsert(record, version=version)
            for key, version in deletes:
                await self.target.delete(key, version=version)
        written = len(self._pending)
        self._pending.clear()
        return written
