"""ReadModelPort: what query handlers read and projections write; ReadModels hands them out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


class ReadModelPort(Protocol[M]):
    """A table of records of one pydantic model, keyed by its `id` field.

    Writes carry a version (usually the stream version or global position of the
    event that produced them): a write older than the stored one is ignored, so
    replaying events (at-least-once delivery, rebuilds) converges to the same state.
    A delete leaves a tombstone with its version for the same reason.
    `find`/`count` filter by equality on fields; ordering by one field.
    """

    async def upsert(self, record: M, *, version: int) -> None: ...

    async def delete(self, id: str, *, version: int) -> None: ...

    async def get(self, id: str) -> M | None: ...

    async def find(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[M]: ...

    async def count(self, where: Mapping[str, Any] | None = None) -> int: ...

    async def clear(self) -> None:
        """Drop every record (before a rebuild)."""
        ...


class ReadModels(Protocol):
    """Hands out the read model of a record type: the same object for the same table, created
    (and its table, where there is one) on first use. `table` defaults to a name derived from
    the model's class name; two record types never share a table unless asked to."""

    async def get(self, model: type[M], *, table: str | None = None) -> ReadModelPort[M]: ...
