"""CheckpointStore: where projections and relays remember how far they got."""

from __future__ import annotations

from typing import Protocol


class CheckpointStore(Protocol):
    """Durable `name -> position`. `load` of an unknown name is 0. `save` is
    last-writer-wins (a rebuild saves 0), and returns once the position is durable."""

    async def load(self, name: str) -> int: ...

    async def save(self, name: str, position: int) -> None: ...

    async def all(self) -> dict[str, int]: ...
