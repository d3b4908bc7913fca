"""One read model as a container Resource, for a service's own providers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

from pydantic import BaseModel

from bento.application.ports.read_model import ReadModelPort, ReadModels

M = TypeVar("M", bound=BaseModel)


async def read_model(
    read_models: ReadModels, model: type[M], table: str | None = None
) -> AsyncIterator[ReadModelPort[M]]:
    """Resource builder for one read model: `providers.Resource(read_model, container.read_models, Row)`."""
    yield await read_models.get(model, table=table)
