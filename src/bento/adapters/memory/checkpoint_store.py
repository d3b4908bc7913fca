"""InMemoryCheckpointStore."""

from __future__ import annotations


class InMemoryCheckpointStore:
    """Checkpoints in a dict (lost on exit)."""

    def __init__(self) -> None:
        self._positions: dict[str, int] = {}

    async def load(self, name: str) -> int:
        return self._positions.get(name, 0)

    async def save(self, name: str, position: int) -> None:
        self._positions[name] = position

    async def all(self) -> dict[str, int]:
        return dict(self._positions)
