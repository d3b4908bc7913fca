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


class RebuildableReadModel(ReadModelPort[M], Protocol[M]):
    """Optional extension of ReadModelPort: build a replacement beside the serving version.

    A zero-downtime rebuild (`bento.application.rebuild`) writes into `shadow()` while
    queries keep reading the serving version through this same object, then calls
    `promote_shadow()`. The contract, checked by `ReadModelContract` for adapters that
    offer it:

    * `shadow()` returns the replacement being built, created empty on first use. Writes to
      it are invisible to reads of the serving version. Where the store is durable, the
      shadow outlives the process, so an interrupted rebuild resumes into it.
    * `has_shadow()` says whether a shadow exists (a resumed rebuild whose shadow is gone
      starts over instead of filling an empty table from the middle of the history).
    * `promote_shadow()` makes the shadow the serving version in one step: a concurrent
      reader sees the old version or the new one, never an empty or partial table. The
      old version is dropped, and this object (and every other reader of the same name,
      in any process) reads the new one from then on.
    * `drop_shadow()` discards the shadow (a rebuild started over); no-op without one.
    """

    async def shadow(self) -> ReadModelPort[M]: ...

    async def has_shadow(self) -> bool: ...

    async def promote_shadow(self) -> None: ...

    async def drop_shadow(self) -> None: ...


class ReadModels(Protocol):
    """Hands out the read model of a record type: the same object for the same table, created
    (and its table, where there is one) on first use. `table` defaults to a name derived from
    the model's class name; two record types never share a table unless asked to."""

    async def get(self, model: type[M], *, table: str | None = None) -> ReadModelPort[M]: ...
