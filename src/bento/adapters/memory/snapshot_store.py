"""InMemorySnapshotStore: snapshots in a dict, for tests and the embedded demo."""

from __future__ import annotations

import copy

from bento.application.ports.snapshot_store import Snapshot


class InMemorySnapshotStore:
    """Latest snapshot per stream in process memory (lost on exit, which is harmless:
    snapshots are a cache of the stream)."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}

    async def load(self, stream: str) -> Snapshot | None:
        snapshot = self._snapshots.get(stream)
        # A deep copy, so an aggregate restored from it cannot mutate the stored state.
        return copy.deepcopy(snapshot) if snapshot is not None else None

    async def save(self, snapshot: Snapshot) -> None:
        current = self._snapshots.get(snapshot.stream)
        if current is None or snapshot.version >= current.version:
            self._snapshots[snapshot.stream] = copy.deepcopy(snapshot)

    async def delete(self, stream: str) -> None:
        self._snapshots.pop(stream, None)
