"""SnapshotStoreContract. Subclasses provide a `snapshots` fixture (a SnapshotStore)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from bento.application.ports.snapshot_store import Snapshot, SnapshotStore


def _stream() -> str:
    return f"snap-{uuid.uuid4().hex}"


class SnapshotStoreContract:
    async def test_missing_is_none(self, snapshots: SnapshotStore) -> None:
        assert await snapshots.load(_stream()) is None

    async def test_save_then_load_round_trips(self, snapshots: SnapshotStore) -> None:
        stream = _stream()
        state = {
            "status": "paid",
            "lines": [{"sku": "a", "qty": 2}],
            "total": 12.5,
            "note": "é✓",
            "none": None,
        }
        taken = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        await snapshots.save(Snapshot(stream, 10, state, aggregate_type="Order", schema_version=2, taken_at=taken))
        got = await snapshots.load(stream)
        assert got is not None
        assert (got.stream, got.version, got.state, got.aggregate_type, got.schema_version) == (
            stream,
            10,
            state,
            "Order",
            2,
        )

    async def test_latest_version_wins_even_when_saved_late(self, snapshots: SnapshotStore) -> None:
        stream = _stream()
        await snapshots.save(Snapshot(stream, 20, {"n": 20}))
        await snapshots.save(Snapshot(stream, 10, {"n": 10}))
        got = await snapshots.load(stream)
        assert got is not None and got.version == 20 and got.state == {"n": 20}
        await snapshots.save(Snapshot(stream, 30, {"n": 30}))
        got = await snapshots.load(stream)
        assert got is not None and got.version == 30 and got.state == {"n": 30}

    async def test_streams_are_independent_and_delete_forgets(self, snapshots: SnapshotStore) -> None:
        a, b = _stream(), _stream()
        await snapshots.save(Snapshot(a, 1, {"s": "a"}))
        await snapshots.save(Snapshot(b, 2, {"s": "b"}))
        await snapshots.delete(a)
        assert await snapshots.load(a) is None
        got = await snapshots.load(b)
        assert got is not None and got.state == {"s": "b"}

    async def test_after_a_delete_only_later_saves_count(self, snapshots: SnapshotStore) -> None:
        stream = _stream()
        await snapshots.save(Snapshot(stream, 20, {"n": 20}))
        await snapshots.delete(stream)
        await snapshots.save(Snapshot(stream, 5, {"n": 5}))  # lower than the forgotten one
        got = await snapshots.load(stream)
        assert got is not None and got.version == 5 and got.state == {"n": 5}
        await snapshots.save(Snapshot(stream, 5, {"n": "again"}))  # the same version again: the last save wins
        got = await snapshots.load(stream)
        assert got is not None and got.state == {"n": "again"}

    async def test_loaded_state_is_a_copy(self, snapshots: SnapshotStore) -> None:
        stream = _stream()
        await snapshots.save(Snapshot(stream, 1, {"items": [1]}))
        first = await snapshots.load(stream)
        assert first is not None
        first.state["items"].append(2)
        again = await snapshots.load(stream)
        assert again is not None and again.state == {"items": [1]}
