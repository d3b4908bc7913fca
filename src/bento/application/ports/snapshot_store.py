"""SnapshotStore: the latest saved state of an aggregate, so loading it does not
replay its whole stream."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state after it applied `version` events of `stream`.

    `state` is what `AggregateRoot.snapshot_state()` returned (JSON-compatible).
    `schema_version` is the aggregate class's `snapshot_version` when the snapshot was
    taken: a repository ignores a snapshot of another schema version and replays the
    stream instead, so changing an aggregate's state layout needs no migration."""

    stream: str
    version: int
    state: dict[str, Any]
    aggregate_type: str = ""
    schema_version: int = 1
    taken_at: datetime | None = None


class SnapshotStore(Protocol):
    """Durable `stream -> latest snapshot`.

    Snapshots are a cache of the event stream, never the truth: losing one only costs a
    longer replay. `save` keeps the snapshot with the highest version per stream (an
    older snapshot saved late never replaces a newer one); `load` returns it, or None.
    """

    async def load(self, stream: str) -> Snapshot | None: ...

    async def save(self, snapshot: Snapshot) -> None: ...

    async def delete(self, stream: str) -> None:
        """Forget every snapshot of `stream` (after a schema change, or in tests)."""
        ...
