"""Read-model factories: one ReadModelPort per pydantic model, by configured backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from bento.application.ports.read_model import ReadModelPort

M = TypeVar("M", bound=BaseModel)


class ReadModels(Protocol):
    """Hands out the read model of a record type (created on first use)."""

    async def get(self, model: type[M], *, table: str | None = None) -> ReadModelPort[M]: ...


class InMemoryReadModels:
    def __init__(self) -> None:
        self._models: dict[str, Any] = {}

    async def get(self, model: type[M], *, table: str | None = None) -> ReadModelPort[M]:
        from bento.adapters.memory.read_model import InMemoryReadModel

        key = table or model.__name__
        if key not in self._models:
            self._models[key] = InMemoryReadModel(model)
        found: ReadModelPort[M] = self._models[key]
        return found


class ClickHouseReadModels:
    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._models: dict[str, Any] = {}

    async def get(self, model: type[M], *, table: str | None = None) -> ReadModelPort[M]:
        from bento.adapters.clickhouse.read_model import ClickHouseReadModel

        key = table or _snake(model.__name__)
        if key not in self._models:
            read_model = ClickHouseReadModel(self._engine, model, table=key)
            await read_model.start()
            self._models[key] = read_model
        found: ReadModelPort[M] = self._models[key]
        return found


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


async def memory_read_models() -> AsyncIterator[ReadModels]:
    yield InMemoryReadModels()


async def clickhouse_read_models(engine: Any) -> AsyncIterator[ReadModels]:
    yield ClickHouseReadModels(engine)


async def read_model(
    read_models: ReadModels, model: type[M], table: str | None = None
) -> AsyncIterator[ReadModelPort[M]]:
    """Resource builder for one read model: `providers.Resource(read_model, container.read_models, Row)`."""
    yield await read_models.get(model, table=table)
