"""InMemoryReadModel: a dict of records with versions and tombstones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


class InMemoryReadModel(Generic[M]):
    """ReadModelPort over a dict; versions decide which write wins (see the port).

    Also a RebuildableReadModel: the shadow is a second InMemoryReadModel, and promoting
    it swaps the dict in one assignment (the event loop runs nothing in between), so a
    reader sees the old rows or the new ones. The shadow lives as long as this object."""

    def __init__(self, model: type[M]) -> None:
        if "id" not in model.model_fields:
            raise TypeError(f"read model {model.__name__} needs an `id` field")
        self.model = model
        self._rows: dict[str, tuple[int, M | None]] = {}
        self._shadow: InMemoryReadModel[M] | None = None

    async def upsert(self, record: M, *, version: int) -> None:
        key = str(getattr(record, "id"))  # noqa: B009 - the model is generic
        current = self._rows.get(key)
        if current is None or version >= current[0]:
            self._rows[key] = (version, record)

    async def delete(self, id: str, *, version: int) -> None:
        current = self._rows.get(id)
        if current is None or version >= current[0]:
            self._rows[id] = (version, None)

    async def get(self, id: str) -> M | None:
        current = self._rows.get(id)
        return current[1] if current else None

    def _live(self, where: Mapping[str, Any] | None) -> list[M]:
        rows = [r for _, r in self._rows.values() if r is not None]
        if where:
            rows = [r for r in rows if all(getattr(r, k) == v for k, v in where.items())]
        return rows

    async def find(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[M]:
        rows = self._live(where)
        if order_by is not None:
            rows.sort(key=lambda r: getattr(r, order_by), reverse=descending)
        end = None if limit is None else offset + limit
        return rows[offset:end]

    async def count(self, where: Mapping[str, Any] | None = None) -> int:
        return len(self._live(where))

    async def clear(self) -> None:
        self._rows.clear()

    # -- RebuildableReadModel ---------------------------------------------------------
    async def shadow(self) -> InMemoryReadModel[M]:
        if self._shadow is None:
            self._shadow = InMemoryReadModel(self.model)
        return self._shadow

    async def has_shadow(self) -> bool:
        return self._shadow is not None

    async def promote_shadow(self) -> None:
        if self._shadow is None:
            raise LookupError(f"read model {self.model.__name__} has no shadow to promote")
        self._rows, self._shadow = self._shadow._rows, None

    async def drop_shadow(self) -> None:
        self._shadow = None


class InMemoryReadModels:
    """ReadModels in this process: one InMemoryReadModel per table (default: the class name)."""

    def __init__(self) -> None:
        self._models: dict[str, Any] = {}

    async def get(self, model: type[M], *, table: str | None = None) -> InMemoryReadModel[M]:
        key = table or model.__name__
        if key not in self._models:
            self._models[key] = InMemoryReadModel(model)
        found: InMemoryReadModel[M] = self._models[key]
        return found
